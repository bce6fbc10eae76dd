"""TensorRT engine building for streamseg: ONNX preparation, precision recipes, the engine cache.

Modules (none imports TensorRT at import time):

- :mod:`~streamseg_engines.cache`: :class:`EngineKey`, :class:`EngineCache` (keyed by GPU name
  and compute capability, TensorRT version, ONNX sha256, precision, size).
- :mod:`~streamseg_engines.precision`: FP32 / FP16 / INT8 recipes for TensorRT 10.x and 11.x.
- :mod:`~streamseg_engines.onnx_prep`: plugin attributes, FP16 cast, Q/DQ transplant.
- :mod:`~streamseg_engines.calib`: INT8 calibration frames from a video or image folder.
- :mod:`~streamseg_engines.builder`: the thin TensorRT builder calls.
- :mod:`~streamseg_engines.build`: :func:`ensure_engine`, the whole build-or-reuse step.
- :mod:`~streamseg_engines.cli`: ``streamseg build-engine``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EngineCache", "EngineKey", "EngineRecord", "ensure_engine"]


def __getattr__(name: str) -> Any:
    if name in ("EngineCache", "EngineKey", "EngineRecord"):
        from streamseg_engines import cache

        return getattr(cache, name)
    if name == "ensure_engine":
        from streamseg_engines.build import ensure_engine

        return ensure_engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
