"""The ONNX Runtime backend: the exported graph (ort flavour) on CPU, or on CUDA where available.

One :class:`onnxruntime.InferenceSession` per model and network-input size, on the
cached or given ONNX file (:mod:`streamseg.backends.exported`). Pre- and postprocessing
are the ones every graph backend shares (:mod:`streamseg.backends.graph_backend`), so
the Instances are those of the torch backend.

Session options (tuned for this graph on a CPU): all graph optimisations
(``ORT_ENABLE_ALL``: constant folding, Conv+BN/Relu fusion, layout transforms),
sequential execution (the graph is a chain, parallel branches would only fight for
cores), intra-op threads = the cores this process may use, and the CPU memory arena
with memory patterns (the same shapes repeat every frame).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from streamseg.backends.exported import ExportedGraphBackend, usable_cores
from streamseg.backends.graph_backend import OUTPUT_ROWS, valid_rows
from streamseg.errors import BackendError, ConfigError
from streamseg.models.registry import DEFAULT_MODEL
from streamseg.optional import import_optional

__all__ = ["OnnxRuntimeBackend", "session_options", "available_providers", "run_bound"]


def _import_ort() -> Any:
    return import_optional("onnxruntime", BackendError(
        "the onnxruntime backend needs ONNX Runtime: pip install 'streamseg[onnx]' "
        "(onnxruntime, or onnxruntime-gpu for CUDA)"
    ))  # fmt: skip


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers in this install ([] without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def session_options(threads: int | None = None) -> Any:
    """The tuned :class:`onnxruntime.SessionOptions` (see the module docstring).

    Args:
        threads: intra-op threads (default: the cores this process may run on).

    Raises:
        BackendError: onnxruntime is not installed.
    """
    ort = _import_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = int(threads or usable_cores())
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.log_severity_level = 3  # errors only: ORT warns about unused initialisers of the export
    return options


class OnnxRuntimeBackend(ExportedGraphBackend):
    """Mask R-CNN / Keypoint R-CNN under ONNX Runtime (the ``"onnxruntime"`` backend).

    Args:
        model_name: registry name.
        device: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` (needs onnxruntime-gpu's
            CUDAExecutionProvider).
        onnx_path: an ONNX file exported by ``streamseg export --flavour ort`` to use
            instead of the cache (its size then fixes the network input; frames whose
            resized size does not fit are refused).
        threads: intra-op threads (default: the cores this process may use).
        flavour: ``"ort"`` (default), or ``"trt"`` to run the graph TensorRT will parse,
            with ``streamseg::MultiLevelRoIAlign`` as a Python custom op
            (:mod:`streamseg.ops.ort_custom_op`; for checking on a CPU, not for speed).
        **kwargs: :class:`~streamseg.backends.graph_backend.GraphBackend`'s arguments
            (``weights``, ``score_thresh``, ``min_size``, ``keypoints``,
            ``detections_per_img``, ``seed``, ``allow_download``).

    Raises:
        BackendError: onnxruntime missing, or CUDA asked for without its provider.
        ConfigError: bad arguments; ``onnx_path`` together with ``keypoints``.
        WeightsError: weights or ONNX file missing, unreadable or of another model.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        onnx_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        flavour: str = "ort",
        **kwargs: Any,
    ) -> None:
        ort = _import_ort()
        if flavour not in ("ort", "trt"):
            raise ConfigError(f"unknown ONNX flavour {flavour!r}; use ort or trt")
        super().__init__(model_name, onnx_path=onnx_path, flavour=flavour, **kwargs)
        if device == "cpu":
            self.providers = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(
                    f"device {device} asked for, but ONNX Runtime has no CUDAExecutionProvider here "
                    f"(providers: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
                    "and a CUDA driver, or use --device cpu"
                )
            index = int(device.split(":")[1]) if ":" in device else 0
            self.providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            raise ConfigError(f"device {device!r} is not supported by the onnxruntime backend (use cpu or cuda)")
        self.device = device
        self._threads = threads
        self._sessions: dict[tuple[int, tuple[int, int]], Any] = {}

    def session(self, index: int, size: tuple[int, int]) -> Any:
        """The InferenceSession of model ``index`` at ``size`` (created once)."""
        key = (index, size)
        if key not in self._sessions:
            ort = _import_ort()
            path = self.onnx_file(index, size)
            try:
                if self.flavour == "trt":
                    from streamseg.ops.ort_custom_op import inference_session

                    providers = tuple(p if isinstance(p, str) else p[0] for p in self.providers)
                    self._sessions[key] = inference_session(
                        path, options=session_options(self._threads), providers=providers
                    )
                else:
                    self._sessions[key] = ort.InferenceSession(
                        str(path), sess_options=session_options(self._threads), providers=self.providers
                    )
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                raise BackendError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        return self._sessions[key]

    def _inputs(self, image: np.ndarray, size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The graph's inputs: on CUDA made on the GPU from the uint8 frame, else numpy on the CPU.

        On ``cuda`` (with torch's CUDA): the frame is copied to the GPU and preprocessed there
        (:func:`~streamseg.models.preprocess.preprocess_tensor`, the torch backend's
        arithmetic); :meth:`_run` binds those tensors to the session (I/O binding), so the
        float network input never crosses PCIe.
        """
        if not self.device.startswith("cuda"):
            return super()._inputs(image, size)
        import torch

        if not torch.cuda.is_available():
            return super()._inputs(image, size)
        device = torch.device(self.device)
        inputs, (h, w) = self._device_inputs(image, size, device)
        torch.cuda.synchronize(device)  # ONNX Runtime runs on its own stream
        return inputs, (h, w)

    def _run(self, index: int, size: tuple[int, int], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        session = self.session(index, size)
        names = [o.name for o in session.get_outputs()]
        try:
            if all(isinstance(v, np.ndarray) for v in inputs.values()):
                outs = session.run(names, inputs)
            else:
                outs = run_bound(session, inputs, names)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from exc
        out = dict(zip(names, outs, strict=True))
        if self.flavour == "trt":  # padded to detections_per_img: keep the valid rows
            n = valid_rows(out["num_detections"], len(out["boxes"]))
            out = {name: value[:n] for name, value in out.items() if name in OUTPUT_ROWS}
        return out


def run_bound(session: Any, inputs: dict[str, Any], names: list[str]) -> list[np.ndarray]:
    """Run ``session`` on torch tensors bound in place (ONNX Runtime's I/O binding), outputs to the host.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        inputs: ``{name: tensor}`` contiguous float32 torch tensors on the CPU or a CUDA
            device (``bind_input`` by ``data_ptr``, no copy).
        names: the outputs to return, in order.

    Returns:
        The outputs as numpy arrays (``copy_outputs_to_cpu``).
    """
    binding = session.io_binding()
    for name, tensor in inputs.items():
        tensor = tensor.contiguous()
        binding.bind_input(
            name=name,
            device_type=tensor.device.type,
            device_id=tensor.device.index or 0,
            element_type=np.float32,
            shape=tuple(tensor.shape),
            buffer_ptr=tensor.data_ptr(),
        )
    for name in names:
        binding.bind_output(name)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()
