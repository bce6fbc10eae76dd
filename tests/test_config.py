"""The one typed configuration: validation messages, registry defaults, the device resolver, create_backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamseg.backends import Backend, create_backend
from streamseg.config import ModelConfig, OutputConfig, StreamSettings, resolve_device, validated
from streamseg.errors import BackendError, ConfigError

KEYPOINT = "keypointrcnn_resnet50_fpn"


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (ModelConfig, {"name": "yolo"}, "name: unknown model 'yolo'; known models: maskrcnn_resnet50_fpn"),
        (ModelConfig, {"backend": "nope"}, "backend: unknown backend 'nope'; known backends: torch, onnxruntime"),
        (ModelConfig, {"min_size": 16}, "min_size: Input should be greater than or equal to 32 (got 16)"),
        (ModelConfig, {"device": "gpu0"}, "device: must be auto, cpu, cuda or cuda:N, got 'gpu0'"),
        (ModelConfig, {"score_floor": 1.5}, "score_floor: Input should be less than or equal to 1 (got 1.5)"),
        (ModelConfig, {"onnx": "m.onnx"}, "onnx (--onnx) is for backends onnxruntime and openvino"),
        (ModelConfig, {"precision": "fp16"}, "precision fp16 is not one of backend torch's: fp32"),
        (ModelConfig, {"backend": "openvino", "precision": "fp16"}, "not one of backend openvino's: fp32, bf16, int8"),
        (ModelConfig, {"backend": "openvino", "precision": "int8"}, "precision int8 needs calibration frames"),
        (ModelConfig, {"backend": "openvino", "calib": "v.mp4"}, "calib (--calib) is only used with precision int8"),
        (ModelConfig, {"backend": "replay"}, "backend replay and a replay file (--replay FILE.jsonl) go together"),
        (ModelConfig, {"nmae": "demo"}, "unknown key 'nmae' (allowed: name, weights, backend"),
        (StreamSettings, {"detect_every": 0}, "detect_every: Input should be greater than or equal to 1 (got 0)"),
        (StreamSettings, {"score_thresh": -0.1}, "score_thresh: Input should be greater than or equal to 0"),
        (StreamSettings, {"track": False, "detect_every": 2}, "detect_every > 1 and trails need tracking"),
        (StreamSettings, {"tracker": {"max_lost": 3}}, "tracker: unknown key 'max_lost' (allowed:"),
        (StreamSettings, {"tracker": {"low_thresh": 2.0}}, "cfg: tracker low_thresh must be in [0, 1]"),
        (StreamSettings, {"render": {"mask_alpha": "x"}}, "render.mask_alpha: Input should be a valid number"),
        (StreamSettings, {"render": {"bogus": 1}}, "render: unknown key 'bogus'"),
        (OutputConfig, {"video": "out.avi"}, "video: must end in .mp4 (H.264 MP4), got out.avi"),
        (OutputConfig, {"mot_interpolate": 5}, "mot_interpolate fills gaps in the mot file"),
    ],
)
def test_a_bad_value_names_the_key_and_the_allowed_range(model: type, data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validated(model, data, where="cfg")
    assert message in str(info.value)
    assert str(info.value).startswith("cfg")


def test_per_model_defaults_come_from_the_registry() -> None:
    demo = ModelConfig(name="demo")
    assert demo.input_min_size == 240 and demo.spec.min_size == 240  # the size it was trained at
    assert ModelConfig().input_min_size == 800 and ModelConfig(name="demo", min_size=320).input_min_size == 320
    assert StreamSettings().threshold_for(demo) == 0.5 and StreamSettings(score_thresh=0.3).threshold_for(demo) == 0.3
    assert ModelConfig().score_floor == 0.1  # ByteTrack's low threshold: the tracker sees everything above it


def test_the_one_device_resolver() -> None:
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == here and resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto", backend="tensorrt") == "cuda"  # TensorRT needs a GPU: it says so itself
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")


def test_create_backend_takes_the_typed_config() -> None:
    backend = create_backend(ModelConfig(name=KEYPOINT, weights="random", min_size=64, device="cpu"))
    assert isinstance(backend, Backend)
    assert backend.name == "torch" and backend.model_name == KEYPOINT and backend.random_weights
    assert tuple(backend.categories) == ("__background__", "person") and backend.device == "cpu"
    assert backend.min_size == 64 and backend.score_thresh == pytest.approx(0.1)
    with pytest.raises(BackendError, match=r"\(H, W, 3\) uint8"):
        backend.infer(np.zeros((32, 32), np.uint8))
    instances, _ = backend.infer(np.zeros((48, 64, 3), np.uint8))
    assert instances.image_size == (48, 64) and instances.masks is None
    demo = create_backend(ModelConfig(name="demo", device="cpu"))
    assert demo.min_size == 240 and not demo.random_weights


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_tensorrt_without_a_gpu_or_tensorrt_says_why() -> None:
    with pytest.raises((BackendError, ConfigError)) as info:
        create_backend(ModelConfig(backend="tensorrt", weights="random"))
    assert "TensorRT" in str(info.value) or "CUDA" in str(info.value)
