"""The one typed configuration of a run: model, backend, device, thresholds, tracker, drawing, outputs.

Every front-end builds these from its own input and nothing else: ``streamseg run``
from its flags, ``streamseg monitor`` from its TOML file (:mod:`streamseg.monitor.config`),
the window from its settings. Validation happens here, once, by pydantic; a bad value
becomes a :class:`~streamseg.errors.ConfigError` that names the key and the allowed
range (:func:`validated`).

Thresholds follow ByteTrack (Zhang et al. 2022, Sec. 3): the model runs at a low
floor (:attr:`ModelConfig.score_floor`, 0.1), the tracker sees every detection above
it (its second association uses the low-score ones to keep tracks alive through
occlusion), and :attr:`StreamSettings.score_thresh` filters only what is drawn and
written. Per-model defaults (input size, display threshold) live in the model
registry (:class:`~streamseg.models.registry.ModelSpec`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from streamseg.errors import ConfigError
from streamseg.render import RenderOptions
from streamseg.tracking import TrackerConfig

__all__ = [
    "DEVICES",
    "MODEL_SCORE_FLOOR",
    "ModelConfig",
    "OutputConfig",
    "StreamSettings",
    "resolve_device",
    "validated",
]

#: Score the model itself runs with: ByteTrack's low threshold (``TrackerConfig.low_thresh``).
MODEL_SCORE_FLOOR = 0.1
#: Device names: ``auto`` is CUDA when torch sees a GPU, else the CPU; ``cuda:N`` is accepted too.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

M = TypeVar("M", bound=BaseModel)


class _Config(BaseModel):
    """Frozen, no unknown keys; scalar fields are Strict* (no ``"60"`` for a number, no ``1`` for a bool)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def resolve_device(device: str, *, backend: str = "torch") -> str:
    """The device a backend runs on: ``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``.

    The one place ``auto`` is resolved. TensorRT runs only on a GPU, so for it ``auto``
    is always ``cuda`` (the backend then says clearly that no GPU is there).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        backend: the backend name.

    Returns:
        ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: not one of those names.
    """
    if not _DEVICE.match(str(device)):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device != "auto":
        return device
    if backend == "tensorrt":
        return "cuda"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: The precisions each backend builds or compiles for (the first of tensorrt's and openvino's
#: lists is not the default: see :attr:`ModelConfig.resolved_precision`).
PRECISIONS: dict[str, tuple[str, ...]] = {"tensorrt": ("fp32", "fp16", "int8"), "openvino": ("fp32", "bf16", "int8")}


class ModelConfig(_Config):
    """Which model runs, on which backend and device, at which input size and score floor.

    Attributes:
        name: registry name (``streamseg models``), e.g. ``maskrcnn_resnet50_fpn`` or ``demo``.
        weights: a weights file, ``"random"`` (seeded random weights), or None for the
            registry's verified file.
        backend: ``torch``, ``onnxruntime`` or one an installed package registers
            (``tensorrt``, from ``streamseg[tensorrt]``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        min_size: shorter side of the network input in pixels (>= 32); None for the
            model's registry default (240 for ``demo``, 800 for the COCO models).
        max_detections: at most this many detections per frame and model (torchvision's
            ``box_detections_per_img``).
        keypoints: with a mask model, also run Keypoint R-CNN for person keypoints.
        seed: torch seed for ``weights="random"``.
        score_floor: the score the model runs with (exclusive, torchvision's
            ``box_score_thresh``), in [0, 1]: ByteTrack's low threshold, 0.1.
        onnx: with ``backend="onnxruntime"`` or ``"openvino"``, a file from ``streamseg export``
            instead of the cache.
        precision: the engine precision: with ``backend="tensorrt"`` fp32, fp16 or int8
            (None: fp16); with ``backend="openvino"`` fp32 or bf16 (None: fp32); the other
            backends run fp32 only.
        replay: with ``backend="replay"``, the streamseg JSONL whose detections are given
            back frame by frame (:mod:`streamseg.backends.replay`).
        calib: with ``precision="int8"``, the video file or image folder to calibrate on
            (:mod:`streamseg.calibration`).
    """

    name: StrictStr = "maskrcnn_resnet50_fpn"
    weights: StrictStr | None = None
    backend: StrictStr = "torch"
    device: StrictStr = "auto"
    min_size: StrictInt | None = Field(default=None, ge=32)
    max_detections: StrictInt = Field(default=100, ge=1)
    keypoints: StrictBool = False
    seed: StrictInt = 0
    score_floor: StrictFloat = Field(default=MODEL_SCORE_FLOOR, ge=0.0, le=1.0)
    onnx: StrictStr | None = None
    precision: Literal["fp32", "fp16", "bf16", "int8"] | None = None
    replay: StrictStr | None = None
    calib: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from streamseg.models.registry import MODELS

        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; known models: {', '.join(MODELS)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from streamseg.backends import backend_names

        names = backend_names()
        if value not in names:
            raise ValueError(f"unknown backend {value!r}; known backends: {', '.join(names)}")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _onnx_for_onnxruntime(self) -> ModelConfig:
        if self.onnx is not None and self.backend not in ("onnxruntime", "openvino"):
            raise ValueError("onnx (--onnx) is for backends onnxruntime and openvino")
        if (self.replay is not None) != (self.backend == "replay"):
            raise ValueError("backend replay and a replay file (--replay FILE.jsonl) go together")
        allowed = PRECISIONS.get(self.backend, ("fp32",))
        if self.precision is not None and self.precision not in allowed:
            raise ValueError(
                f"precision {self.precision} is not one of backend {self.backend}'s: {', '.join(allowed)} "
                f"(tensorrt: {', '.join(PRECISIONS['tensorrt'])}; openvino: {', '.join(PRECISIONS['openvino'])})"
            )
        if self.calib is not None and self.precision != "int8":
            raise ValueError("calib (--calib) is only used with precision int8")
        if self.precision == "int8" and self.backend == "openvino" and self.calib is None:
            raise ValueError("precision int8 needs calibration frames: calib (--calib VIDEO_OR_FOLDER)")
        return self

    @property
    def resolved_precision(self) -> str:
        """``precision``, or the backend's default: fp16 for tensorrt, fp32 for the others."""
        return self.precision or ("fp16" if self.backend == "tensorrt" else "fp32")

    @property
    def spec(self) -> Any:
        """The registry entry (:class:`~streamseg.models.registry.ModelSpec`)."""
        from streamseg.models.registry import get_model_spec

        return get_model_spec(self.name)

    @property
    def input_min_size(self) -> int:
        """``min_size``, or the model's registry default (pixels)."""
        return self.min_size if self.min_size is not None else int(self.spec.min_size)

    @property
    def random_weights(self) -> bool:
        """The weights are seeded random ones."""
        return self.weights is not None and self.weights.lower() == "random"

    def resolved_device(self) -> str:
        """The device after :func:`resolve_device` (``auto`` resolved)."""
        return resolve_device(self.device, backend=self.backend)

    def describe(self) -> str:
        """One short line, e.g. ``"demo on torch (auto, 240 px)"``."""
        weights = f", weights {self.weights}" if self.weights else ""
        return f"{self.name} on {self.backend} ({self.device}, {self.input_min_size} px{weights})"


class StreamSettings(_Config):
    """What one stream's processor does with the model's detections (:class:`~streamseg.core.StreamProcessor`).

    Attributes:
        score_thresh: draw and write only instances with a score at least this, in
            [0, 1]; None for the model's registry default (0.5). The tracker sees every
            detection the model gives (down to :attr:`ModelConfig.score_floor`).
        detect_every: run the model on every K-th frame; the tracker predicts the boxes
            in between (needs ``track``).
        track: give instances track IDs (ByteTrack-style tracker).
        tracker: the tracker's settings (:class:`~streamseg.tracking.TrackerConfig`; a
            table of its fields in TOML).
        render: what the annotated video shows (:class:`~streamseg.render.RenderOptions`;
            ``render.score_thresh`` may draw fewer instances than are written).
        trails: draw a short trail of each track's box centre (needs ``track``).
        hud: draw the fps / latency heads-up display on the annotated video.
    """

    score_thresh: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    detect_every: StrictInt = Field(default=1, ge=1)
    track: StrictBool = True
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    render: RenderOptions = Field(default_factory=RenderOptions)
    trails: StrictBool = False
    hud: StrictBool = True

    @model_validator(mode="after")
    def _needs_tracking(self) -> StreamSettings:
        if not self.track and (self.detect_every > 1 or self.trails):
            raise ValueError("detect_every > 1 and trails need tracking (track = true)")
        return self

    def threshold_for(self, model: ModelConfig) -> float:
        """``score_thresh``, or the model's registry default."""
        return self.score_thresh if self.score_thresh is not None else float(model.spec.score_thresh)


class OutputConfig(_Config):
    """The files a single-stream run writes (each None: not written).

    Attributes:
        video: annotated H.264 MP4 (must end in ``.mp4``).
        audio: carry the source file's audio in ``video`` (copied, or re-encoded to AAC
            where MP4 does not allow its codec); False for a video-only MP4. Live sources
            and image folders have no audio to carry.
        jsonl: per-frame results, JSON Lines with COCO RLE masks.
        coco_json: every frame's instances as one COCO results json list
            (``COCO.loadRes``; :mod:`streamseg.sinks.coco_json`).
        mot: tracks in MOT Challenge txt format (needs tracking).
        mot_interpolate: fill track gaps of up to this many frames in ``mot`` when the
            run ends (ByteTrack's offline linear interpolation); 0 = off.
    """

    video: Path | None = None
    audio: bool = True
    jsonl: Path | None = None
    coco_json: Path | None = None
    mot: Path | None = None
    mot_interpolate: int = Field(default=0, ge=0)

    @field_validator("video")
    @classmethod
    def _mp4(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() != ".mp4":
            raise ValueError(f"must end in .mp4 (H.264 MP4), got {value}")
        return value

    @model_validator(mode="after")
    def _interpolate_needs_mot(self) -> OutputConfig:
        if self.mot_interpolate and self.mot is None:
            raise ValueError("mot_interpolate fills gaps in the mot file: give mot (--mot FILE.txt)")
        return self


def _path(where: str, loc: tuple[Any, ...]) -> str:
    """``where`` joined with a pydantic location: ``streams[0] 'a'`` + ``("tracker",)`` -> ``streams[0] 'a'.tracker``."""
    text = where
    for item in loc:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "config"


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (a model's fields, or a nested dataclass field's)."""
    import dataclasses

    if not loc:
        return list(model.model_fields)
    field = model.model_fields.get(str(loc[0]))
    kind = getattr(field, "annotation", None)
    return [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []


def validated(model: type[M], data: Any, *, where: str = "") -> M:
    """Build ``model`` from ``data`` (a mapping), turning pydantic's errors into one ConfigError.

    Args:
        model: a config class of this module (or any pydantic model).
        data: its fields as a mapping.
        where: the key path of ``data`` for the message, e.g. ``"[model]"`` or ``"streams[1] 'door'"``.

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: every problem, joined by ``"; "``: the key path, what is wrong and
            the allowed values or range, e.g. ``streams[0] 'a'.detect_every: Input should
            be greater than or equal to 1 (got 0)``, ``[model]: unknown key 'nmae'
            (allowed: name, weights, ...)``, ``streams[0]: missing field 'url'``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ConfigError as exc:  # a nested dataclass's own range check (TrackerConfig.__post_init__)
        raise ConfigError(f"{where or 'config'}: {exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, kind = tuple(err["loc"]), err["type"]
            if kind in ("extra_forbidden", "unexpected_keyword_argument"):
                allowed = f" (allowed: {', '.join(_field_names(model, loc[:-1]))})" if len(loc) <= 2 else ""
                problems.append(f"{_path(where, loc[:-1])}: unknown key {loc[-1]!r}{allowed}")
            elif kind == "missing":
                problems.append(f"{_path(where, loc[:-1])}: missing field {loc[-1]!r}")
            else:
                msg = err["msg"].removeprefix("Value error, ")
                got = err.get("input")
                shown = "" if isinstance(got, dict) or not loc else f" (got {got!r})"
                problems.append(f"{_path(where, loc)}: {msg}{shown}")
        raise ConfigError("; ".join(problems)) from None
