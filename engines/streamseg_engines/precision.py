"""Which precision recipe the installed TensorRT expects (pure logic, no TensorRT import).

TensorRT 10.x builds *weakly typed* networks: the ONNX stays float32 and builder
flags (``BuilderFlag.FP16``, ``BuilderFlag.INT8``) let TensorRT pick reduced-precision
kernels. TensorRT 11.x removed those flags: every network is *strongly typed*, so
precision lives in the ONNX itself (NVIDIA's TensorRT 10.x -> 11.x migration guide,
"Strongly Typed Networks Are Now Required").

======== ======================================= ==========================================
 prec.    TensorRT 10.x                           TensorRT 11.x
======== ======================================= ==========================================
 fp32     float32 ONNX, no flag                   float32 ONNX, strongly typed
 fp16     float32 ONNX, ``BuilderFlag.FP16``      ONNX cast to FP16 (:func:`cast_to_fp16`)
 int8     Q/DQ ONNX, ``INT8`` + ``FP16`` flags    Q/DQ ONNX, strongly typed (rest FP32)
======== ======================================= ==========================================

INT8 is explicit quantization in both: ModelOpt's post-training quantization
(``modelopt.onnx.quantization.quantize``) calibrated on video frames writes
QuantizeLinear / DequantizeLinear nodes (implicit-quantization calibrators are
deprecated in 10.x and gone in 11.x).
"""

from __future__ import annotations

import dataclasses
import re

from streamseg.errors import ConfigError, EngineError

__all__ = ["PrecisionPlan", "plan_precision", "tensorrt_major"]

_PRECISIONS = ("fp32", "fp16", "int8")


#: The oldest TensorRT streamseg builds with: 10.9 is the first whose ONNX parser imports
#: Python AOT plugins (its CHANGELOG; ``aot_impl`` is absent from release/10.7 and 10.8).
MIN_TENSORRT = (10, 9)


def tensorrt_version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string (``"10.13.0.35"`` -> (10, 13)).

    Raises:
        EngineError: not a version string.
    """
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if match is None:
        raise EngineError(f"cannot read the TensorRT version {version!r}")
    return int(match.group(1)), int(match.group(2))


def tensorrt_major(version: str) -> int:
    """Major version of a TensorRT version string (``"10.13.0.35"`` -> 10).

    Raises:
        EngineError: not a version string.
    """
    match = re.match(r"^\s*(\d+)\.", str(version))
    if match is None:
        raise EngineError(f"cannot read the TensorRT version {version!r}")
    return int(match.group(1))


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    """How to build one precision with one TensorRT version.

    Attributes:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        tensorrt_major: 10, 11, ...
        strongly_typed: create the network with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``.
        builder_flags: names of ``trt.BuilderFlag`` members to set.
        cast_fp16: cast the ONNX to FP16 first (:func:`streamseg_engines.onnx_prep.cast_to_fp16`).
        quantize_int8: insert INT8 Q/DQ nodes first (ModelOpt, calibrated).
    """

    precision: str
    tensorrt_major: int
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    cast_fp16: bool
    quantize_int8: bool

    def describe(self) -> str:
        """One line for progress messages and ``doctor``."""
        steps = []
        if self.quantize_int8:
            steps.append("INT8 Q/DQ (ModelOpt PTQ)")
        if self.cast_fp16:
            steps.append("ONNX cast to FP16")
        steps.append("strongly typed" if self.strongly_typed else "weakly typed")
        if self.builder_flags:
            steps.append("flags " + "+".join(self.builder_flags))
        return f"{self.precision} on TensorRT {self.tensorrt_major}.x: " + ", ".join(steps)


def plan_precision(precision: str, tensorrt_version: str) -> PrecisionPlan:
    """The recipe for ``precision`` with the given TensorRT version (table above).

    Args:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        tensorrt_version: ``tensorrt.__version__``.

    Returns:
        The :class:`PrecisionPlan`.

    Raises:
        ConfigError: unknown precision.
        EngineError: TensorRT older than 10.9 (:data:`MIN_TENSORRT`: the parser of older
            versions cannot import the AOT RoIAlign plugin).
    """
    if precision not in _PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
    major = tensorrt_major(tensorrt_version)
    if tensorrt_version_tuple(tensorrt_version) < MIN_TENSORRT:
        raise EngineError(
            f"TensorRT {tensorrt_version} is too old: streamseg needs TensorRT 10.9 or newer (its ONNX parser "
            "is the first to import Python AOT plugins such as our RoIAlign)"
        )
    if major == 10:
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        return PrecisionPlan(precision, major, False, flags, False, precision == "int8")
    return PrecisionPlan(precision, major, True, (), precision == "fp16", precision == "int8")
