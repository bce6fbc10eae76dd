"""The TensorRT backend: errors on this machine, the valid-row/postprocess path with a fake engine,
and (TensorRT + GPU only) parity with the torch backend on COCO images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamseg_engines import tensorrt_backend as tb
from streamseg_engines.build import RuntimeFacts

from streamseg.errors import BackendError, ConfigError
from streamseg.models.preprocess import preprocess
from streamseg.postprocess import RawDetections, postprocess
from tests.conftest import data_path

FACTS = RuntimeFacts("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def test_valid_rows_clamps():
    assert tb.valid_rows(np.array([3], np.int64), 100) == 3
    assert tb.valid_rows(np.array([250]), 100) == 100
    assert tb.valid_rows(-1, 100) == 0


def test_errors_here_name_what_is_missing():
    import torch

    with pytest.raises(BackendError, match="NVIDIA GPUs only"):
        tb.TensorRTBackend("demo", device="cpu")
    with pytest.raises(ConfigError):
        tb.TensorRTBackend("demo", device="tpu")
    with pytest.raises(ConfigError, match="keypoints"):
        tb.TensorRTBackend("demo", keypoints=True)
    with pytest.raises(ConfigError, match="calib"):
        tb.TensorRTBackend("demo", precision="int8")
    with pytest.raises(ConfigError, match="precision"):
        tb.TensorRTBackend("demo", precision="bf16")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="NVIDIA GPU"):
            tb.TensorRTBackend("demo", device="cuda")


class FakeEngine:
    """Stands in for TensorRTEngine: D = 5 rows, 2 valid; returns only the valid rows, as the real one."""

    input_size = (256, 352)
    rows = 5

    def __init__(self):
        self.feeds = None
        rng = np.random.default_rng(0)
        self.full = {
            "boxes": np.array([[10, 20, 60, 90], [100, 50, 200, 150], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32),
            "scores": np.array([0.9, 0.6, 0, 0, 0], np.float32),
            "labels": np.array([1, 3, 0, 0, 0], np.int64),
            "mask_probs": rng.random((5, 28, 28)).astype(np.float32),
            "num_detections": np.array([2], np.int64),
        }

    def run(self, feeds):
        self.feeds = feeds
        n = tb.valid_rows(self.full["num_detections"], self.rows)
        return {k: v[:n] for k, v in self.full.items() if k in tb.OUTPUT_ROWS}


def test_infer_uses_valid_rows_and_shared_postprocess(monkeypatch):
    monkeypatch.setattr(tb, "_check_runtime", lambda index: FACTS)
    # The inputs are made on the backend's GPU; without one, the same torch code runs on the CPU.
    monkeypatch.setattr(tb.TensorRTBackend, "_torch_device", property(lambda self: torch.device("cpu")))
    backend = tb.TensorRTBackend("demo", device="cuda", min_size=240, score_thresh=0.5)
    assert backend.device == "cuda:0" and backend.name == "tensorrt"
    image = np.zeros((240, 320, 3), np.uint8)
    size = backend.network_size((240, 320))
    assert size == (256, 320)  # 240x320 already fits min_size 240; rounded up to multiples of 32
    fake = FakeEngine()
    fake.input_size = size
    backend._engines[size] = fake
    instances, timings = backend.infer(image)
    assert set(timings) == {"preprocess", "model", "postprocess"}
    assert isinstance(fake.feeds["images"], torch.Tensor) and fake.feeds["images"].dtype == torch.float32
    assert tuple(fake.feeds["images"].shape) == (1, 3, 256, 320)
    cpu_images, _ = preprocess(image, size=size, min_size=240, max_size=backend.max_size)
    np.testing.assert_array_equal(fake.feeds["images"].numpy(), cpu_images)  # the one preprocessing
    assert fake.feeds["image_size"].tolist() == [240, 320]
    assert fake.feeds["score_thresh"].tolist() == pytest.approx([0.5])
    raw = RawDetections(
        boxes=fake.full["boxes"][:2], scores=fake.full["scores"][:2], labels=fake.full["labels"][:2],
        mask_probs=fake.full["mask_probs"][:2], keypoint_heatmaps=None, input_size=(240, 320), image_size=(240, 320),
    )
    expected = postprocess(raw, score_thresh=0.5, keypoint_labels=(1,))
    assert len(instances) == 2
    np.testing.assert_array_equal(instances.boxes, expected.boxes)
    np.testing.assert_array_equal(instances.masks, expected.masks)
    with pytest.raises(BackendError):
        backend.infer(np.zeros((10, 10), np.uint8))


def test_masks_kept_on_the_gpu_are_pasted_there(monkeypatch):
    """The real engine keeps its (n, 28, 28) ``mask_probs`` rows on the GPU (``last_mask_probs``, a torch
    view of the output buffer, float16 in fp16 engines); the backend pastes those and attaches the crops."""
    from streamseg.masks import mask_crops

    class GpuMasksEngine(FakeEngine):
        def run(self, feeds):
            out = super().run(feeds)
            self.last_mask_probs = torch.from_numpy(out["mask_probs"]).to(torch.float16)
            return out

    monkeypatch.setattr(tb, "_check_runtime", lambda index: FACTS)
    monkeypatch.setattr(tb.TensorRTBackend, "_torch_device", property(lambda self: torch.device("cpu")))
    backend = tb.TensorRTBackend("demo", device="cuda", min_size=240, score_thresh=0.5)
    size = backend.network_size((240, 320))
    engine = GpuMasksEngine()
    engine.input_size = size
    backend._engines[size] = engine
    instances, _ = backend.infer(np.zeros((240, 320, 3), np.uint8))
    assert instances.mask_crops is not None and len(instances.mask_crops) == 2
    # fp16 probabilities: the same crops as pasting the fp16-rounded masks on the host
    rounded = instances.replace(masks=instances.masks.astype(np.float16).astype(np.float32))
    for (ra, ca), (rb, cb) in zip(instances.mask_crops, mask_crops(rounded), strict=True):
        assert ra == rb and (ca != cb).mean() < 0.01


def test_raw_from_outputs_rejects_foreign_outputs():
    with pytest.raises(BackendError, match="outputs"):
        tb.raw_from_outputs({"boxes": np.zeros((1, 4))}, input_size=(10, 10), image_size=(10, 10))


def test_prebuilt_engine_for_another_gpu_is_refused(tmp_path, monkeypatch):
    from streamseg_engines.cache import EngineCache, EngineKey

    from streamseg.errors import EngineError

    monkeypatch.setattr(tb, "_check_runtime", lambda index: FACTS)
    key = EngineKey(model="demo", size=(256, 320), precision="fp16", onnx_sha256="a" * 64,
                    gpu_name="NVIDIA A100-SXM4-40GB", compute_capability=(8, 0), tensorrt_version="10.13.0.35")
    record = EngineCache(tmp_path).put(key, b"x")
    with pytest.raises(EngineError, match="A100.*H100|H100.*A100"):
        tb.TensorRTBackend("demo", device="cuda", engine=record.path)
    key2 = EngineKey(**{**key.to_dict(), "size": (256, 320), "compute_capability": (9, 0),
                        "gpu_name": FACTS.gpu_name, "tensorrt_version": "11.4.0.106"})
    record2 = EngineCache(tmp_path).put(key2, b"x")
    with pytest.raises(EngineError, match="TensorRT 11.4.0.106"):
        tb.TensorRTBackend("demo", device="cuda", engine=record2.path)


# -- TensorRT + GPU ----------------------------------------------------------------------------


def _mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else inter / union


@pytest.mark.slow
def test_engine_matches_torch_backend_on_coco(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'streamseg[tensorrt]')")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    import cv2

    from streamseg.backends.torch_backend import TorchBackend
    from streamseg.masks import paste_masks

    folder = data_path("coco", "val2017-80", "images")
    images = sorted(folder.glob("*.jpg"))[:3]
    try:
        ref = TorchBackend("maskrcnn_resnet50_fpn", device="cuda", allow_download=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the COCO weights are not available here: {exc}")
    trt_backend = tb.TensorRTBackend("maskrcnn_resnet50_fpn", device="cuda", precision="fp32",
                                     allow_download=False, cache_dir=tmp_path)
    for path in images:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        a, _ = ref.infer(image)
        b, _ = trt_backend.infer(image)
        assert len(a) == len(b), path.name
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)
        ma = paste_masks(a.masks, a.boxes, a.image_size)
        mb = paste_masks(b.masks, b.boxes, b.image_size)
        # As the other parity tests: masks of 200 px or more (one pixel moves a smaller mask's IoU by more).
        for i in np.flatnonzero(ma.sum(axis=(1, 2)) >= 200):
            assert _mask_iou(ma[i], mb[i]) >= 0.97, (path.name, i)
