"""Optional dependencies: imported when the feature that needs them runs, with the install hint otherwise."""

from __future__ import annotations

import importlib
from types import ModuleType

from streamseg.errors import StreamsegError

__all__ = ["import_optional"]


def import_optional(module: str, error: StreamsegError) -> ModuleType:
    """Import ``module`` (e.g. ``"openvino"``), or raise ``error`` from the ImportError.

    Args:
        module: the module's import name.
        error: what to raise when it is missing: the error of the feature that needs it,
            with the ``pip install`` that brings it (``BackendError("... pip install
            'streamseg[openvino]'")``).

    Raises:
        StreamsegError: ``error``, when ``module`` cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise error from exc
