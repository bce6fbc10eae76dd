"""Acceptance: TorchBackend (our graph run eagerly, shared postprocess) equals torchvision's own ``model([img])``
within float rounding: the same labels, boxes within 0.01 px, scores within 1e-4, pasted masks
differing only at pixels of probability within 1e-5 of 0.5, with IoU >= 0.99 on every mask of
200 px or more (a smaller mask can fall below it through one such pixel).

Both sides run the same seeded random weights with ``box_score_thresh = 0`` on real
COCO images, so every one of the 100 detections per image is compared: boxes,
scores, labels, pasted masks and keypoints. Random weights make scores nearly tied,
so any numerical drift between the two paths would reorder or swap detections.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torchvision.transforms.functional import to_tensor

from streamseg.backends.torch_backend import TorchBackend, max_size_for
from streamseg.errors import BackendError, ConfigError
from streamseg.masks import paste_masks
from streamseg.models.registry import get_model_spec
from streamseg.postprocess import box_iou

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGES = DATA / "coco" / "val2017-80" / "images"
# Landscape 480x640 (many people), portrait 640x480, and 320x640 where max_size binds.
IMAGE_NAMES = ("000000005001.jpg", "000000166918.jpg", "000000417285.jpg")
MASK = "maskrcnn_resnet50_fpn"
KEYPOINT = "keypointrcnn_resnet50_fpn"

needs_data = pytest.mark.skipif(
    not all((IMAGES / name).is_file() for name in IMAGE_NAMES),
    reason=f"COCO test images not found under {IMAGES} (the shared data folder is absent)",
)


def load_rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(IMAGES / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def reference_model(name: str, backend_model: torch.nn.Module, *, min_size: int = 800) -> torch.nn.Module:
    """torchvision's model with the backend's state dict and box_score_thresh 0, eval mode."""
    model = get_model_spec(name).build(
        box_score_thresh=0.0, min_size=min_size, max_size=max_size_for(min_size)
    )
    model.load_state_dict(backend_model.state_dict())
    return model.eval()


def run_reference(model: torch.nn.Module, image: np.ndarray) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = model([to_tensor(image)])[0]
    return {k: v.numpy() for k, v in out.items()}


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-instance IoU of (N, H, W) bool masks; 1 where both are empty."""
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def assert_same_detections(ours: Any, theirs: dict[str, np.ndarray]) -> None:
    assert len(ours) == len(theirs["boxes"]) > 0
    np.testing.assert_array_equal(ours.labels, theirs["labels"])
    np.testing.assert_allclose(ours.boxes, theirs["boxes"], rtol=0, atol=0.01)
    np.testing.assert_allclose(ours.scores, theirs["scores"], rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {name: load_rgb(name) for name in IMAGE_NAMES}


@pytest.fixture(scope="module")
def mask_pair() -> tuple[TorchBackend, torch.nn.Module]:
    backend = TorchBackend(MASK, weights="random", score_thresh=0.0, seed=0)
    return backend, reference_model(MASK, backend.model)


@pytest.fixture(scope="module")
def keypoint_pair() -> tuple[TorchBackend, torch.nn.Module, Any]:
    backend = TorchBackend(KEYPOINT, weights="random", score_thresh=0.0, seed=0)
    reference = reference_model(KEYPOINT, backend.model)
    return (
        backend,
        reference,
        functools.lru_cache(maxsize=None)(lambda name: run_reference(reference, load_rgb(name))),
    )


# -- parity -----------------------------------------------------------------------------


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
@needs_data
@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_mask_rcnn_parity(name: str, images: dict[str, np.ndarray], mask_pair: Any) -> None:
    backend, reference = mask_pair
    image = images[name]
    ours, timings = backend.infer(image)
    theirs = run_reference(reference, image)
    assert set(timings) == {"preprocess", "model", "postprocess"}
    assert ours.image_size == image.shape[:2] and ours.keypoints is None
    assert_same_detections(ours, theirs)
    assert ours.masks.shape == (len(ours), 28, 28)
    pasted = paste_masks(ours.masks, ours.boxes, ours.image_size, threshold=0.5)
    probs = theirs["masks"][:, 0]
    theirs_binary = probs > 0.5
    # A pixel whose pasted probability is within float32 rounding of 0.5 can go either
    # way: cv2's and ATen's bilinear kernels round differently (ATen's even varies with
    # the output width, through its vectorised loops). A random model's masks are
    # saturated 0 / 1 cells, so bilinear edges land on 0.5 exactly and such pixels are
    # common; on thin boxes a mask of a few pixels makes one of them decide the IoU.
    # So: every disagreement must be such a pixel, IoU >= 0.99 on the other pixels for
    # every instance, and IoU >= 0.99 on all pixels for every mask of 200+ pixels.
    decided = np.abs(probs - 0.5) > 1e-5
    assert not ((pasted != theirs_binary) & decided).any()
    iou_decided = mask_iou(pasted & decided, theirs_binary & decided)
    assert iou_decided.min() >= 0.99, (np.argmin(iou_decided), iou_decided.min())
    large = theirs_binary.sum(axis=(1, 2)) >= 200
    assert large.any()
    iou = mask_iou(pasted, theirs_binary)
    assert iou[large].min() >= 0.99, iou[large].min()


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
@needs_data
@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_keypoint_rcnn_parity(name: str, images: dict[str, np.ndarray], keypoint_pair: Any) -> None:
    backend, _, reference_outputs = keypoint_pair
    ours, _ = backend.infer(images[name])
    theirs = reference_outputs(name)
    assert_same_detections(ours, theirs)
    assert ours.masks is None and ours.keypoints.shape == (len(ours), 17, 3)
    np.testing.assert_allclose(ours.keypoints[..., :2], theirs["keypoints"][..., :2], rtol=0, atol=0.5)
    np.testing.assert_allclose(ours.keypoints[..., 2], theirs["keypoints_scores"], rtol=0, atol=1e-3)


@needs_data
def test_parity_at_min_size_320(images: dict[str, np.ndarray]) -> None:
    backend = TorchBackend(MASK, weights="random", score_thresh=0.0, seed=1, min_size=320)
    assert backend.model.transform.min_size == (320,) and backend.model.transform.max_size == 533
    name = IMAGE_NAMES[2]
    ours, _ = backend.infer(images[name])
    theirs = run_reference(reference_model(MASK, backend.model, min_size=320), images[name])
    assert_same_detections(ours, theirs)


# -- mask model + keypoint model --------------------------------------------------------


def _share_person_head(mask_model: torch.nn.Module, kp_model: torch.nn.Module, car_bias: float) -> None:
    """Make the random mask model see the keypoint model's persons (same proposals and person boxes).

    Random weights almost never give a person box that overlaps a random keypoint model's
    person box, so merging would be untested. The mask model takes the keypoint model's
    RPN, box head and person rows of the box predictor; every class but background,
    person and car is switched off, and cars (random box regression) compete through
    ``car_bias``. Person boxes of both models then coincide, car rows must stay NaN.
    """
    with torch.no_grad():
        mask_model.rpn.load_state_dict(kp_model.rpn.state_dict())
        mask_model.roi_heads.box_head.load_state_dict(kp_model.roi_heads.box_head.state_dict())
        mine = mask_model.roi_heads.box_predictor
        theirs = kp_model.roi_heads.box_predictor
        mine.cls_score.weight.zero_()
        mine.cls_score.bias.fill_(-1e4)
        mine.cls_score.weight[:2] = theirs.cls_score.weight
        mine.cls_score.bias[:2] = theirs.cls_score.bias
        mine.cls_score.bias[3] = car_bias
        mine.bbox_pred.weight[4:8] = theirs.bbox_pred.weight[4:8]
        mine.bbox_pred.bias[4:8] = theirs.bbox_pred.bias[4:8]


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
@needs_data
def test_mask_plus_keypoints(images: dict[str, np.ndarray], keypoint_pair: Any) -> None:
    kp_backend, _, reference_outputs = keypoint_pair
    backend = TorchBackend(MASK, weights="random", score_thresh=0.0, seed=0, keypoints=True)
    assert backend.keypoint_model is not None and backend.random_weights
    kp_state = backend.keypoint_model.state_dict()
    assert all(torch.equal(v, kp_state[k]) for k, v in kp_backend.model.state_dict().items())
    _share_person_head(backend.model, backend.keypoint_model, car_bias=-3.0)

    name = IMAGE_NAMES[0]
    out, timings = backend.infer(images[name])
    kp_ref = reference_outputs(name)  # torchvision's keypoint model, same weights
    ref_kps = np.concatenate([kp_ref["keypoints"][..., :2], kp_ref["keypoints_scores"][..., None]], -1)

    assert out.keypoints.shape == (len(out), 17, 3) and out.masks.shape == (len(out), 28, 28)
    assert np.all(np.diff(out.scores) <= 0)
    from_mask_model = out.masks.reshape(len(out), -1).any(axis=1)  # appended rows have zero masks
    has_kps = np.isfinite(out.keypoints).all(axis=(1, 2))
    assert (np.isnan(out.keypoints[~has_kps])).all()  # rows are all-NaN or all-finite

    others = out.labels != 1
    assert others.any() and not has_kps[others].any()  # cars: NaN keypoints
    persons = from_mask_model & (out.labels == 1)
    matched = persons & has_kps
    appended = ~from_mask_model
    assert matched.sum() >= 10  # persons carry keypoints
    assert (out.labels[appended] == 1).all() and has_kps[appended].all()
    assert matched.sum() + appended.sum() == len(kp_ref["boxes"])  # each keypoint person used once

    iou = box_iou(out.boxes, kp_ref["boxes"])
    for i in np.flatnonzero(has_kps):
        close = np.abs(ref_kps[:, :, :2] - out.keypoints[i, :, :2]).max(axis=(1, 2)) <= 0.5
        same_scores = np.abs(ref_kps[:, :, 2] - out.keypoints[i, :, 2]).max(axis=1) <= 1e-3
        assert np.any(close & same_scores & (iou[i] >= 0.5)), i
    assert set(timings) == {"preprocess", "model", "postprocess"}


# -- construction -----------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda() -> None:
    with pytest.raises(BackendError, match=r"CUDA requested .* torch.cuda.is_available\(\) is False"):
        TorchBackend(weights="random", device="cuda")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        TorchBackend("yolo", weights="random")
    with pytest.raises(ConfigError, match="score_thresh"):
        TorchBackend(weights="random", score_thresh=1.5)
    with pytest.raises(ConfigError, match="invalid device"):
        TorchBackend(weights="random", device="gpu0")
