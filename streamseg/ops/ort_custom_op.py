"""Run the "trt" ONNX flavour (``streamseg::MultiLevelRoIAlign`` nodes) under ONNX Runtime.

The custom node is implemented as an onnxruntime-extensions Python op
(``onnxruntime_extensions.onnx_op``) that calls the PyTorch implementation
(:func:`streamseg.ops.roi_align.multi_level_roi_align`), on the CPU, float32 only. It is for
checking a TensorRT-bound graph on a machine without TensorRT, not for speed (onnxruntime-extensions
copies each output through a Python list: 1000 RoIs x 256 channels x 7 x 7 take about 2.4 s on
2 CPU cores, against 0.77 s for the "ort" flavour). For ONNX Runtime deployment export the
"ort" flavour, which needs no custom op.

Two facts about onnxruntime-extensions shape this module (checked in its source and with
0.15.2):

* **Custom domains work.** A Python op declared with ``op_type="streamseg::MultiLevelRoIAlign"``
  is registered in domain ``"streamseg"`` (``PyCustomOpDef::AddOp`` splits the name at ``::``,
  since microsoft/onnxruntime-extensions PR #136 of 2021, so in every version pyproject allows;
  ops without a domain go to ``"ai.onnx.contrib"``). The exported graph therefore runs in its
  own domain: no renaming of nodes to ``ai.onnx.contrib``.
* **Python ops can read only scalar attributes** (``int64``, ``float``, ``string``): the kernel
  asks ONNX Runtime for each declared attribute with ``KernelInfoGetAttribute_int64`` /
  ``_float`` / ``_string`` and fails with "Attribute name and type don't match" on
  ``output_size`` (ints) and ``spatial_scales`` (floats). The least invasive fix, and the one
  used here, is :func:`prepare_model`: an in-memory copy of the model in which every
  ``streamseg::MultiLevelRoIAlign`` node carries one extra string attribute,
  :data:`LIST_ATTRIBUTES_MIRROR`, a JSON copy of its two list attributes. Node, domain, op
  type, inputs, outputs and original attributes are untouched, the file on disk (the one
  TensorRT gets) is unchanged, and the Python op reads ``sampling_ratio`` and ``aligned`` from
  the node's own attributes. :func:`inference_session` does both steps.

Example::

    from streamseg.ops.ort_custom_op import inference_session
    session = inference_session("model_trt.onnx")
    (pooled,) = session.run(None, {"rois": rois, "p2": p2, "p3": p3, "p4": p4, "p5": p5})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamseg.errors import BackendError
from streamseg.ops.onnx_export import CUSTOM_DOMAIN, CUSTOM_OP_TYPE
from streamseg.ops.roi_align import _multi_level_roi_align, make_config

if TYPE_CHECKING:
    import onnx
    import onnxruntime

__all__ = [
    "LIST_ATTRIBUTES_MIRROR",
    "inference_session",
    "prepare_model",
    "register_python_op",
    "session_options",
]

#: Extra string attribute added by :func:`prepare_model`:
#: ``{"output_size": [S_h, S_w], "spatial_scales": [s2, s3, s4, s5]}`` as JSON.
LIST_ATTRIBUTES_MIRROR = "streamseg_ort_list_attributes"

_registered = False


def _import_ort() -> tuple[Any, Any]:
    try:
        import onnxruntime
        import onnxruntime_extensions
    except ImportError as error:
        raise BackendError(
            f"running streamseg::MultiLevelRoIAlign under ONNX Runtime needs onnxruntime and "
            f"onnxruntime-extensions ({error}); install them with `pip install streamseg[onnx]`"
        ) from error
    return onnxruntime, onnxruntime_extensions


def _multi_level_roi_align_pyop(
    rois: np.ndarray,
    p2: np.ndarray,
    p3: np.ndarray,
    p4: np.ndarray,
    p5: np.ndarray,
    **attributes: Any,
) -> np.ndarray:
    """Body of the Python op: numpy in, numpy out, attributes as onnxruntime-extensions casts them.

    Args:
        rois: ``[N, 4]`` float32; p2 .. p5: ``[1, C, H_l, W_l]`` float32.
        **attributes: ``sampling_ratio`` (int), ``aligned`` (int) and the JSON mirror.

    Returns:
        ``[N, C, S_h, S_w]`` float32.
    """
    lists = json.loads(attributes[LIST_ATTRIBUTES_MIRROR])
    config = make_config(
        output_size=tuple(lists["output_size"]),
        sampling_ratio=int(attributes["sampling_ratio"]),
        aligned=bool(attributes["aligned"]),
        spatial_scales=lists["spatial_scales"],
    )
    features = [torch.from_numpy(np.ascontiguousarray(p)) for p in (p2, p3, p4, p5)]
    with torch.no_grad():
        pooled = _multi_level_roi_align(torch.from_numpy(np.ascontiguousarray(rois)), features, config)
    return pooled.numpy()


def register_python_op() -> None:
    """Register the ``streamseg::MultiLevelRoIAlign`` Python op with onnxruntime-extensions, once.

    The registration is process-wide (onnxruntime-extensions keeps one table of Python ops);
    calling this again does nothing.

    Raises:
        BackendError: if onnxruntime or onnxruntime-extensions is not installed.
    """
    global _registered
    if _registered:
        return
    _, ortx = _import_ort()
    float_type = ortx.PyCustomOpDef.dt_float
    ortx.onnx_op(
        op_type=f"{CUSTOM_DOMAIN}::{CUSTOM_OP_TYPE}",
        inputs=[float_type] * 5,
        outputs=[float_type],
        attrs={
            "sampling_ratio": ortx.PyCustomOpDef.dt_int64,
            "aligned": ortx.PyCustomOpDef.dt_int64,
            LIST_ATTRIBUTES_MIRROR: ortx.PyCustomOpDef.dt_string,
        },
    )(_multi_level_roi_align_pyop)
    _registered = True


def session_options(options: onnxruntime.SessionOptions | None = None) -> onnxruntime.SessionOptions:
    """Session options under which ``streamseg::MultiLevelRoIAlign`` nodes run.

    Registers the Python op (:func:`register_python_op`) and the onnxruntime-extensions
    library, which adds the ``streamseg`` domain to the session. The model must also have
    gone through :func:`prepare_model` (see the module docstring for why).

    Args:
        options: options to extend; a new ``onnxruntime.SessionOptions`` if None.

    Returns:
        The options, with the custom-op library registered.

    Raises:
        BackendError: if onnxruntime or onnxruntime-extensions is not installed.
    """
    ort, ortx = _import_ort()
    register_python_op()
    if options is None:
        options = ort.SessionOptions()
    options.register_custom_ops_library(ortx.get_library_path())
    return options


def prepare_model(model: onnx.ModelProto | str | Path | bytes) -> onnx.ModelProto:
    """Copy of ``model`` whose custom nodes also carry their list attributes as a JSON string.

    Args:
        model: an ONNX model, its path, or its serialized bytes.

    Returns:
        A new ``onnx.ModelProto`` (the input is not modified) in which every
        ``streamseg::MultiLevelRoIAlign`` node has the string attribute
        :data:`LIST_ATTRIBUTES_MIRROR`. Models without such nodes come back as a plain copy.

    Raises:
        BackendError: if onnx is not installed.
        ValueError: if a custom node lacks ``output_size`` or ``spatial_scales``.
    """
    try:
        import onnx
    except ImportError as error:
        raise BackendError(
            f"onnx is not installed ({error}); install it with `pip install streamseg[onnx]`"
        ) from error
    if isinstance(model, (str, Path)):
        prepared = onnx.load(str(model))
    elif isinstance(model, bytes):
        prepared = onnx.load_from_string(model)
    else:
        prepared = onnx.ModelProto()
        prepared.CopyFrom(model)

    for node in _custom_nodes(prepared.graph):
        values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        missing = [name for name in ("output_size", "spatial_scales") if name not in values]
        if missing:
            raise ValueError(
                f"{CUSTOM_DOMAIN}::{CUSTOM_OP_TYPE} node {node.name!r} lacks attribute(s) {missing}"
            )
        mirror = json.dumps(
            {
                "output_size": [int(v) for v in values["output_size"]],
                "spatial_scales": [float(v) for v in values["spatial_scales"]],
            }
        )
        for i, attribute in enumerate(node.attribute):
            if attribute.name == LIST_ATTRIBUTES_MIRROR:
                del node.attribute[i]
                break
        node.attribute.append(onnx.helper.make_attribute(LIST_ATTRIBUTES_MIRROR, mirror))
    return prepared


def _custom_nodes(graph):
    """Every ``streamseg::MultiLevelRoIAlign`` node of ``graph`` and of its subgraphs."""
    for node in graph.node:
        if node.domain == CUSTOM_DOMAIN and node.op_type == CUSTOM_OP_TYPE:
            yield node
        for attribute in node.attribute:
            if attribute.g.node:
                yield from _custom_nodes(attribute.g)
            for subgraph in attribute.graphs:
                yield from _custom_nodes(subgraph)


def inference_session(
    model: onnx.ModelProto | str | Path | bytes,
    *,
    options: onnxruntime.SessionOptions | None = None,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
) -> onnxruntime.InferenceSession:
    """ONNX Runtime session for a model that may contain ``streamseg::MultiLevelRoIAlign`` nodes.

    :func:`prepare_model` plus :func:`session_options`.

    Args:
        model: an ONNX model, its path, or its serialized bytes.
        options: session options to extend.
        providers: execution providers; the Python op itself always runs on the CPU.

    Returns:
        An ``onnxruntime.InferenceSession``.

    Raises:
        BackendError: if onnx, onnxruntime or onnxruntime-extensions is not installed.
    """
    ort, _ = _import_ort()
    prepared = prepare_model(model)
    return ort.InferenceSession(
        prepared.SerializeToString(), sess_options=session_options(options), providers=list(providers)
    )
