"""ONNX export of :class:`~streamseg.models.graph.MaskRCNNGraph`, in two flavours, and its cache.

* ``flavour="ort"`` (ONNX Runtime): dynamic detection axis; our
  :class:`~streamseg.ops.MultiLevelRoIAlign` is decomposed into standard opset-17
  ``RoiAlign`` nodes, one per FPN level, with ``coordinate_transformation_mode`` and
  ``sampling_ratio`` always written out (runtimes disagree on their defaults).
* ``flavour="trt"`` (TensorRT): static proposal and detection counts, and our op as
  one custom node ``streamseg::MultiLevelRoIAlign``, which the TensorRT plugin in
  plugins/ implements (and :mod:`streamseg.ops.ort_custom_op` under ONNX Runtime).

NMS is the ONNX ``NonMaxSuppression`` op; no ``Loop`` node is left (checked). Each
file records in its ``metadata_props`` what it is (:data:`METADATA_KEYS`), so a file
exported from another model, size, flavour or graph version is refused with a clear
message (:func:`check_onnx_metadata`) instead of giving wrong detections.

Files made on demand are cached under ``$STREAMSEG_CACHE`` (default
``~/.cache/streamseg``) in ``onnx/``, named after the model, the weights' sha256, the
size, the flavour, the detection count and the graph version (:func:`cached_onnx`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError, WeightsError
from streamseg.models.registry import get_model_spec

__all__ = [
    "FLAVOURS",
    "METADATA_KEYS",
    "OPSET",
    "cache_dir",
    "cached_onnx",
    "check_onnx_metadata",
    "export_onnx",
    "read_onnx_metadata",
    "weights_id",
]

log = logging.getLogger("streamseg")

#: ONNX flavours: for ONNX Runtime, and for TensorRT (with our plugin).
FLAVOURS = ("ort", "trt")
#: ONNX opset of the exported graphs (RoiAlign's coordinate_transformation_mode needs 16+).
OPSET = 17
#: metadata_props keys written into every exported file.
METADATA_KEYS = (
    "streamseg.model",
    "streamseg.graph_version",
    "streamseg.flavour",
    "streamseg.size",
    "streamseg.detections_per_img",
    "streamseg.weights_sha256",
)


def cache_dir() -> Path:
    """streamseg's cache folder: ``$STREAMSEG_CACHE``, or ``~/.cache/streamseg``."""
    env = os.environ.get("STREAMSEG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "streamseg"


def weights_id(model_name: str, weights: str | None, *, seed: int = 0, allow_download: bool = True) -> str:
    """What identifies the weights an export is made from: the file's sha256, or ``random-seed<N>``.

    Raises:
        WeightsError: as :func:`~streamseg.models.weights.resolve_weights`.
    """
    from streamseg.models.weights import file_sha256, resolve_weights

    spec = get_model_spec(model_name)
    path = resolve_weights(spec, weights, allow_download=allow_download)
    return f"random-seed{seed}" if path is None else file_sha256(path)


def _check_flavour(flavour: str) -> str:
    if flavour not in FLAVOURS:
        raise ConfigError(f"unknown ONNX flavour {flavour!r}; use one of: {', '.join(FLAVOURS)}")
    return flavour


def export_onnx(
    model_name: str,
    *,
    size: tuple[int, int] | str,
    flavour: str,
    path: str | os.PathLike[str],
    weights: str | None = None,
    seed: int = 0,
    allow_download: bool = True,
    detections_per_img: int = 100,
) -> Path:
    """Export a registry model's :class:`~streamseg.models.graph.MaskRCNNGraph` to ONNX (opset 17).

    Args:
        model_name: registry name (``streamseg models``).
        size: network-input (H, W) or ``"HxW"``, multiples of 32.
        flavour: ``"ort"`` or ``"trt"`` (see the module docstring).
        path: the .onnx file to write (written to a temporary name, then renamed).
        weights: as :class:`~streamseg.backends.torch_backend.TorchBackend`: a file,
            ``"random"``, or None for the registry's file.
        seed: torch seed for random weights.
        allow_download: allow downloading missing registry weights.
        detections_per_img: at most this many detections (static D for ``"trt"``).

    Returns:
        The written path.

    Raises:
        ConfigError: unknown model or flavour, a size that is not a multiple of 32.
        WeightsError: weights missing, corrupt, or of another architecture.
        EngineError: the exported graph fails onnx.checker or contains a Loop node.
    """
    import onnx
    import torch

    from streamseg.errors import EngineError
    from streamseg.models.graph import GRAPH_VERSION, INPUT_NAMES, MaskRCNNGraph, parse_size
    from streamseg.models.weights import load_model
    from streamseg.ops import onnx_flavour

    spec = get_model_spec(model_name)
    size = parse_size(size)
    _check_flavour(flavour)
    if int(detections_per_img) < 1:
        raise ConfigError(f"detections_per_img must be >= 1, got {detections_per_img}")
    wid = weights_id(model_name, weights, seed=seed, allow_download=allow_download)
    model, _ = load_model(spec, weights, seed=seed, allow_download=allow_download, detections_per_img=detections_per_img)
    graph = MaskRCNNGraph(model, size=size, static=flavour == "trt", detections_per_img=detections_per_img).eval()
    example = (
        torch.zeros((1, 3, *size), dtype=torch.float32).normal_(generator=torch.Generator().manual_seed(0)),
        torch.tensor([float(size[0]), float(size[1])]),
        torch.tensor([0.0]),
    )
    dynamic_axes = None
    if flavour == "ort":
        dynamic_axes = {name: {0: "detections"} for name in graph.output_names if name != "num_detections"}
    buffer = io.BytesIO()
    t0 = time.perf_counter()
    with (
        torch.no_grad(),
        onnx_flavour(flavour),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        # The TorchScript exporter is deprecated in favour of dynamo, which cannot trace
        # torchvision's NMS into NonMaxSuppression yet; its warnings are not the user's concern.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            buffer,
            opset_version=OPSET,
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(graph.output_names),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    # State the output shapes: the exporter's shape inference cannot follow them through the
    # data-dependent steps. Static graph: all fixed; ort: only the detection axis varies.
    with torch.no_grad():
        shapes = [tuple(t.shape) for t in graph(*example)]
    for output, shape in zip(proto.graph.output, shapes, strict=True):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for axis, value in enumerate(shape):
            if flavour == "ort" and axis == 0 and output.name != "num_detections":
                dims.add().dim_param = "detections"
            else:
                dims.add().dim_value = int(value)
    loops = [n.name for n in proto.graph.node if n.op_type in ("Loop", "Scan")]
    if loops:
        raise EngineError(f"the exported {flavour} graph has Loop/Scan nodes ({loops[:3]}); it must not")
    meta = {
        "streamseg.model": spec.name,
        "streamseg.graph_version": GRAPH_VERSION,
        "streamseg.flavour": flavour,
        "streamseg.size": f"{size[0]}x{size[1]}",
        "streamseg.detections_per_img": str(int(detections_per_img)),
        "streamseg.weights_sha256": wid,
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "streamseg"
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise EngineError(f"the exported {flavour} graph fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s (%s, %dx%d) to %s in %.1f s", spec.name, flavour, *size, path, time.perf_counter() - t0)
    return path


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, without loading its weights.

    Raises:
        WeightsError: the file is missing or not an ONNX model.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise WeightsError(f"{path} is not an ONNX model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return {p.key: p.value for p in proto.metadata_props}


def check_onnx_metadata(
    path: str | os.PathLike[str],
    *,
    model_name: str,
    flavour: str,
    size: tuple[int, int] | None = None,
) -> dict[str, str]:
    """Check that an ONNX file is our graph for this model, flavour and graph version.

    Args:
        path: the file.
        model_name: registry name it must have been exported from.
        flavour: ``"ort"`` or ``"trt"``.
        size: network-input (H, W) it must have, or None for any.

    Returns:
        The file's metadata.

    Raises:
        WeightsError: the file is missing, not ONNX, not exported by streamseg, or
            exported for another model, flavour, size or graph version (the message
            says which and how to re-export).
    """
    from streamseg.models.graph import GRAPH_VERSION

    meta = read_onnx_metadata(path)
    redo = f"re-export it with: streamseg export --model {model_name} --flavour {flavour} --size HxW -o FILE"
    if "streamseg.graph_version" not in meta:
        raise WeightsError(f"{path} was not exported by streamseg (no streamseg metadata); {redo}")
    found = {
        "model": (meta.get("streamseg.model"), model_name),
        "graph version": (meta.get("streamseg.graph_version"), GRAPH_VERSION),
        "flavour": (meta.get("streamseg.flavour"), flavour),
    }
    if size is not None:
        found["size"] = (meta.get("streamseg.size"), f"{size[0]}x{size[1]}")
    wrong = [f"{what} {have!r} (expected {want!r})" for what, (have, want) in found.items() if have != want]
    if wrong:
        raise WeightsError(f"{path} is for another model version: {', '.join(wrong)}; {redo}")
    return meta


def cached_onnx(
    model_name: str,
    *,
    size: tuple[int, int] | str,
    flavour: str,
    weights: str | None = None,
    seed: int = 0,
    allow_download: bool = True,
    detections_per_img: int = 100,
    weights_sha256: str | None = None,
) -> Path:
    """The cached ONNX file for these settings, exported first if it is not there yet.

    The name carries everything the graph depends on: model, weights sha256 (or the
    random seed), size, flavour, detection count and :data:`GRAPH_VERSION`, so a
    change of any of them exports a new file and an old file is never reused wrongly.

    Args:
        model_name, size, flavour, weights, seed, allow_download, detections_per_img: as
            :func:`export_onnx`.
        weights_sha256: :func:`weights_id` of ``weights`` when the caller has it already
            (hashing a 170 MB checkpoint takes about a second); computed otherwise.

    Returns:
        The path under ``cache_dir() / "onnx"``.

    Raises:
        as :func:`export_onnx`.
    """
    from streamseg.models.graph import GRAPH_VERSION, parse_size

    spec = get_model_spec(model_name)
    size = parse_size(size)
    _check_flavour(flavour)
    wid = weights_sha256 or weights_id(model_name, weights, seed=seed, allow_download=allow_download)
    tag = hashlib.sha256(wid.encode()).hexdigest()[:12] if not wid.startswith("random") else wid
    name = f"{spec.name}-{tag}-{size[0]}x{size[1]}-{flavour}-d{int(detections_per_img)}-g{GRAPH_VERSION}.onnx"
    path = cache_dir() / "onnx" / name
    if not path.is_file():
        log.warning("exporting %s to ONNX (%s flavour, %dx%d) once; cached at %s", spec.name, flavour, *size, path)
        export_onnx(
            model_name,
            size=size,
            flavour=flavour,
            path=path,
            weights=weights,
            seed=seed,
            allow_download=allow_download,
            detections_per_img=detections_per_img,
        )
    return path


# -- CLI --------------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Add ``streamseg export`` to the CLI's subparsers."""
    from streamseg.models.registry import DEFAULT_MODEL, MODELS

    p = subparsers.add_parser(
        "export",
        help="export a model's inference graph to ONNX for ONNX Runtime and OpenVINO (ort) or TensorRT (trt)",
        description="Export the export-friendly Mask R-CNN / Keypoint R-CNN graph (backbone+FPN, RPN, "
        "box head with NMS, mask and keypoint heads; our MultiLevelRoIAlign op) to ONNX opset 17 for one "
        "network-input size. The 'ort' flavour has a dynamic detection axis and standard RoiAlign nodes; "
        "the 'trt' flavour pads to fixed counts and keeps MultiLevelRoIAlign as one "
        "streamseg::MultiLevelRoIAlign node for the TensorRT plugin. Inputs: images (1,3,H,W) "
        "normalised and zero-padded, image_size (2,) = valid (h, w), score_thresh (1,). Outputs: boxes, "
        "scores, labels, num_detections, mask_probs and/or keypoint_heatmaps.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=f"registry model (default: {DEFAULT_MODEL}); one of: {', '.join(MODELS)}")
    p.add_argument("--weights", metavar="PATH|random", help="weights file, or 'random' (default: the registry's file)")
    p.add_argument("--size", required=True, metavar="HxW", help="network-input size, multiples of 32 (e.g. 800x1216 for a 4:3 frame at min size 800)")
    p.add_argument("--flavour", choices=FLAVOURS, default="ort", help="ort = ONNX Runtime and OpenVINO, trt = TensorRT (default: ort)")
    p.add_argument("--detections", type=int, default=100, metavar="N", help="most detections per image (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed for --weights random (default: 0)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="where to write the ONNX file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``streamseg export``: write the file and say what it is."""
    path = export_onnx(
        args.model,
        size=args.size,
        flavour=args.flavour,
        path=args.output,
        weights=args.weights,
        seed=args.seed,
        detections_per_img=args.detections,
    )
    meta = read_onnx_metadata(path)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {meta['streamseg.model']}, {args.flavour} flavour, "
        f"input 1x3x{meta['streamseg.size']}, opset {OPSET}, graph version {meta['streamseg.graph_version']}"
    )
    return 0
