"""Numpy postprocessing against torchvision: bicubic keypoint decoding, mask pasting, rescaling, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torchvision.models.detection import roi_heads, transform
from torchvision.ops import box_iou as tv_box_iou

from streamseg.postprocess import (
    RawDetections,
    _bicubic_argmax,
    box_iou,
    heatmaps_to_keypoints,
    merge_keypoints,
    paste_masks,
    postprocess,
    resize_boxes,
    upsample_bicubic,
)
from streamseg.types import Instances


def torch_bicubic(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torch's own bicubic upsampling of (K, H, W) maps, as torchvision's heatmaps_to_keypoints calls it."""
    return F.interpolate(torch.from_numpy(maps)[:, None], size=size, mode="bicubic", align_corners=False)[
        :, 0
    ].numpy()


@pytest.fixture(scope="module")
def fma() -> bool:
    """Which of torch's CPU kernels runs here: with FMA (AVX2/AVX512) or without (DEFAULT).

    Exactly one of the two arithmetic replays must match torch bit for bit.
    """
    rng = np.random.default_rng(123)
    probe = rng.standard_normal((4, 56, 56)).astype(np.float32)
    ref = torch_bicubic(probe, (157, 93))
    matches = [f for f in (True, False) if np.array_equal(upsample_bicubic(probe, (157, 93), fma=f), ref)]
    assert len(matches) == 1, f"neither/both bicubic replays match torch {torch.__version__} here: {matches}"
    return matches[0]


def random_rois(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes from sub-pixel (width clamps to 1) to 900 pixels, fractional corners, varied aspect."""
    w = np.exp(rng.uniform(np.log(0.2), np.log(900), n))
    h = np.exp(rng.uniform(np.log(0.2), np.log(900), n))
    w[:3] = [0.3, 1.0, 56.0]
    h[:3] = [0.7, 2.5, 56.0]
    x1 = rng.uniform(0, 800, n)
    y1 = rng.uniform(0, 600, n)
    return np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)


# -- bicubic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(1, 1), (2, 3), (20, 56), (56, 56), (57, 113), (123, 77), (400, 333), (811, 1290)]
)
def test_upsample_bicubic_bit_exact(size: tuple[int, int], fma: bool) -> None:
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    maps = (rng.standard_normal((17, 56, 56)) * rng.uniform(0.1, 30)).astype(np.float32)
    np.testing.assert_array_equal(upsample_bicubic(maps, size, fma=fma), torch_bicubic(maps, size))


@pytest.mark.parametrize("kind", ["noisy", "smooth", "flat", "constant"])
def test_fast_argmax_matches_full_map(kind: str, fma: bool) -> None:
    rng = np.random.default_rng(7)
    maps = rng.standard_normal((17, 56, 56)).astype(np.float32)
    if kind == "smooth":
        maps = gaussian_filter(maps, (0, 5, 5)).astype(np.float32)
    elif kind == "flat":
        maps = (1.0 + 1e-7 * maps).astype(np.float32)
    elif kind == "constant":
        maps = np.full_like(maps, 2.5)
    for out_h, out_w in [(37, 210), (256, 190), (5, 3)]:
        full = torch_bicubic(maps, (out_h, out_w)).reshape(17, -1)
        flat, value = _bicubic_argmax(maps, out_h, out_w, fma)
        np.testing.assert_array_equal(flat, full.argmax(axis=1))
        np.testing.assert_array_equal(value, full.max(axis=1))


# -- heatmaps_to_keypoints --------------------------------------------------------------


def _compare_keypoints(maps: np.ndarray, rois: np.ndarray, fma: bool) -> None:
    ours = heatmaps_to_keypoints(maps, rois, fma=fma)
    xy, scores = roi_heads.heatmaps_to_keypoints(torch.from_numpy(maps), torch.from_numpy(rois))
    xy, scores = xy.numpy(), scores.numpy()
    # Exact argmax: recover the integer peak (x_int, y_int) of both and compare.
    widths = np.maximum(rois[:, 2] - rois[:, 0], 1)
    heights = np.maximum(rois[:, 3] - rois[:, 1], 1)
    corr_w = (widths / np.ceil(widths))[:, None]
    corr_h = (heights / np.ceil(heights))[:, None]

    def peak(points: np.ndarray) -> np.ndarray:
        x_int = np.rint((points[..., 0] - rois[:, None, 0]) / corr_w - 0.5)
        y_int = np.rint((points[..., 1] - rois[:, None, 1]) / corr_h - 0.5)
        return np.stack([x_int, y_int], -1)

    np.testing.assert_array_equal(peak(ours), peak(xy))
    np.testing.assert_allclose(ours[..., :2], xy[..., :2], rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours[..., 2], scores, rtol=0, atol=1e-4)


def test_heatmaps_to_keypoints_noisy(fma: bool) -> None:
    rng = np.random.default_rng(0)
    rois = random_rois(rng, 24)
    maps = (rng.standard_normal((24, 17, 56, 56)) * 4).astype(np.float32)
    _compare_keypoints(maps, rois, fma)


def test_heatmaps_to_keypoints_smooth(fma: bool) -> None:
    rng = np.random.default_rng(1)
    rois = random_rois(rng, 24)
    maps = gaussian_filter(rng.standard_normal((24, 17, 56, 56)), (0, 0, 3, 3)).astype(np.float32) * 10
    _compare_keypoints(maps, rois, fma)


def test_heatmaps_to_keypoints_peaked(fma: bool) -> None:
    """One Gaussian bump per keypoint, like a trained model's heatmaps, with a flat background."""
    rng = np.random.default_rng(2)
    n = 12
    rois = random_rois(rng, n)
    yy, xx = np.mgrid[0:56, 0:56]
    centres = rng.uniform(0, 55, (n, 17, 2))
    maps = 8 * np.exp(
        -((xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2) / 8.0
    )
    _compare_keypoints((maps - 2).astype(np.float32), rois, fma)


def test_heatmaps_to_keypoints_empty() -> None:
    out = heatmaps_to_keypoints(np.zeros((0, 17, 56, 56), np.float32), np.zeros((0, 4), np.float32))
    assert out.shape == (0, 17, 3) and out.dtype == np.float32


# -- paste_masks ------------------------------------------------------------------------


def test_paste_masks_matches_torchvision() -> None:
    rng = np.random.default_rng(3)
    n, height, width = 300, 240, 320
    logits = gaussian_filter(rng.standard_normal((n, 28, 28)), (0, 3, 3)) * 8
    masks = (1 / (1 + np.exp(-logits))).astype(np.float32)
    w = np.exp(rng.uniform(np.log(0.2), np.log(500), n))
    h = np.exp(rng.uniform(np.log(0.2), np.log(500), n))
    # Every box touches the image (torchvision's paste fails on boxes wholly outside);
    # many cross a border, some are under a pixel.
    x1 = rng.uniform(-0.8 * w, width - 0.2 * w)
    y1 = rng.uniform(-0.8 * h, height - 0.2 * h)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)
    boxes[:4] = [
        [-10, -10, 400, 300],
        [0.2, 0.3, 0.9, 0.8],
        [318.5, 238.5, 319.2, 239.9],
        [100, 100, 101, 102],
    ]
    masks[:4] = 0.9
    ref = roi_heads.paste_masks_in_image(
        torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (height, width)
    )
    ref = ref[:, 0].numpy() > 0.5
    ours = paste_masks(masks, boxes, (height, width))
    inter = (ref & ours).sum((1, 2))
    union = (ref | ours).sum((1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    assert iou.min() >= 0.999, np.argwhere(iou < 0.999)
    assert ours[:4].any(axis=(1, 2)).all()  # border-crossing and tiny boxes are pasted


# -- postprocess ------------------------------------------------------------------------


def test_postprocess_rescales_like_torchvision(fma: bool) -> None:
    rng = np.random.default_rng(4)
    n = 6
    input_size, image_size = (800, 1066), (480, 640)
    boxes = random_rois(rng, n)
    scores = np.array([0.9, 0.5, 0.3, 0.05, 0.0001, 0.7], np.float32)
    maps = (rng.standard_normal((n, 17, 56, 56)) * 3).astype(np.float32)
    raw = RawDetections(
        boxes=boxes,
        scores=scores,
        labels=np.arange(1, n + 1),
        mask_probs=rng.uniform(0, 1, (n, 28, 28)),
        keypoint_heatmaps=maps,
        input_size=input_size,
        image_size=image_size,
    )
    inst = postprocess(raw, score_thresh=0.3, fma=fma)
    keep = scores > 0.3  # torchvision's comparison: strictly greater
    assert len(inst) == 3 and inst.image_size == image_size
    tv_boxes = transform.resize_boxes(torch.from_numpy(boxes[keep]), list(input_size), list(image_size))
    np.testing.assert_array_equal(inst.boxes, tv_boxes.numpy())
    xy, kp_scores = roi_heads.heatmaps_to_keypoints(
        torch.from_numpy(maps[keep]), torch.from_numpy(boxes[keep])
    )
    tv_kps = transform.resize_keypoints(xy, list(input_size), list(image_size)).numpy()
    np.testing.assert_allclose(inst.keypoints[..., :2], tv_kps[..., :2], atol=1e-3, rtol=0)
    np.testing.assert_allclose(inst.keypoints[..., 2], kp_scores.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(inst.masks, raw.mask_probs[keep])
    np.testing.assert_array_equal(inst.labels, np.arange(1, n + 1)[keep])
    assert (inst.track_ids == -1).all()
    assert len(postprocess(raw)) == n  # default threshold 0.0 keeps every positive score


def test_postprocess_without_masks_or_keypoints() -> None:
    raw = RawDetections(
        boxes=np.zeros((0, 4)),
        scores=np.zeros(0),
        labels=np.zeros(0),
        mask_probs=None,
        keypoint_heatmaps=np.zeros((0, 17, 56, 56)),
        input_size=(320, 427),
        image_size=(480, 640),
    )
    inst = postprocess(raw)
    assert len(inst) == 0 and inst.masks is None and inst.keypoints.shape == (0, 17, 3)


def test_resize_boxes_float32_ratio() -> None:
    boxes = np.array([[10.5, 20.25, 300.75, 400.0]], np.float32)
    ours = resize_boxes(boxes, (799, 1065), (480, 640))
    theirs = transform.resize_boxes(torch.from_numpy(boxes), [799, 1065], [480, 640]).numpy()
    np.testing.assert_array_equal(ours, theirs)


# -- box_iou and merge_keypoints ----------------------------------------------------------


def test_box_iou_matches_torchvision() -> None:
    rng = np.random.default_rng(5)
    a = random_rois(rng, 20)
    b = random_rois(rng, 15)
    b[:5] = a[:5] + 3
    expected = tv_box_iou(torch.from_numpy(a).double(), torch.from_numpy(b).double()).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, atol=1e-12)
    assert box_iou(a[:0], b).shape == (0, 15)


def _kps(n: int, value: float) -> np.ndarray:
    kps = np.full((n, 17, 3), value, np.float32)
    kps[:, :, 2] = np.arange(n)[:, None] + value
    return kps


def _mask_instances(masks: bool = True) -> Instances:
    boxes = np.array(
        [
            [0, 0, 100, 200],  # A: person
            [90, 0, 190, 200],  # B: person
            [300, 300, 400, 350],  # car
            [500, 0, 600, 200],  # C: person, no keypoint detection near
        ],
        np.float32,
    )
    return Instances(
        image_size=(480, 640),
        boxes=boxes,
        scores=[0.9, 0.8, 0.95, 0.6],
        labels=[1, 1, 3, 1],
        masks=np.full((4, 28, 28), 0.7, np.float32) if masks else None,
        track_ids=[5, 6, 7, 8],
    )


def _keypoint_instances() -> Instances:
    boxes = np.array(
        [
            [45, 0, 145, 200],  # X: IoU 0.38 with A, 0.38 with B
            [80, 0, 180, 200],  # Y: IoU 0.11 with A, 0.82 with B
            [5, 0, 105, 200],  # Z: IoU 0.90 with A, 0.08 with B
            [300, 0, 360, 100],  # W: no mask instance near
        ],
        np.float32,
    )
    kps = np.stack([np.full((17, 3), v, np.float32) for v in (10, 20, 30, 40)])
    return Instances(
        image_size=(480, 640), boxes=boxes, scores=[0.99, 0.85, 0.7, 0.65], labels=[1, 1, 1, 1], keypoints=kps
    )


def test_merge_keypoints_assignment() -> None:
    merged = merge_keypoints(_mask_instances(), _keypoint_instances())
    # A-Z (0.90) and B-Y (0.82); X (the highest score, IoU 0.38 with both) pairs with neither.
    order = np.argsort(-merged.scores, kind="stable")
    np.testing.assert_array_equal(order, np.arange(len(merged)))  # sorted by score
    by_track = {int(t): i for i, t in enumerate(merged.track_ids) if t >= 0}
    assert merged.keypoints[by_track[5]][0, 0] == 30  # A <- Z
    assert merged.keypoints[by_track[6]][0, 0] == 20  # B <- Y
    assert np.isnan(merged.keypoints[by_track[7]]).all()  # car
    assert np.isnan(merged.keypoints[by_track[8]]).all()  # C: unmatched person
    appended = np.flatnonzero(merged.track_ids == -1)
    assert sorted(merged.keypoints[appended][:, 0, 0].tolist()) == [10, 40]  # X and W
    assert (merged.labels[appended] == 1).all()
    assert (merged.masks[appended] == 0).all()
    assert len(merged) == 6 and merged.masks.shape == (6, 28, 28)
    assert merged.scores[0] == np.float32(0.99)


def test_merge_keypoints_hungarian_beats_greedy() -> None:
    # P1 overlaps K1 (0.70) and K2 (0.60); P2 overlaps only K1 (0.65).
    # Greedy (P1-K1) leaves P2 unmatched; the assignment pairs P1-K2 and P2-K1.
    inst = Instances(
        image_size=(100, 400),
        boxes=[[0, 0, 100, 100], [40, 0, 140, 100]],
        scores=[0.9, 0.8],
        labels=[1, 1],
        masks=np.zeros((2, 28, 28), np.float32),
    )
    k1 = [20, 0, 117, 100]
    k2 = [-25, 0, 75, 100]
    kp = Instances(
        image_size=(100, 400), boxes=[k1, k2], scores=[0.7, 0.6], labels=[1, 1], keypoints=_kps(2, 1.0)
    )
    iou = box_iou(inst.boxes, kp.boxes)
    assert iou[0, 0] > iou[0, 1] >= 0.5 and iou[1, 0] >= 0.5 and iou[1, 1] < 0.5
    merged = merge_keypoints(inst, kp)
    assert len(merged) == 2
    np.testing.assert_array_equal(merged.keypoints[0], kp.keypoints[1])
    np.testing.assert_array_equal(merged.keypoints[1], kp.keypoints[0])


def test_merge_keypoints_iou_threshold() -> None:
    inst = _mask_instances()
    kp = _keypoint_instances()
    merged = merge_keypoints(inst, kp, iou_thresh=0.95)  # nothing pairs
    assert len(merged) == len(inst) + len(kp)
    assert np.isnan(merged.keypoints[merged.track_ids >= 0]).all()
    assert np.isfinite(merged.keypoints[merged.track_ids < 0]).all()


def test_merge_keypoints_without_masks_and_empty() -> None:
    merged = merge_keypoints(_mask_instances(masks=False), _keypoint_instances())
    assert merged.masks is None and len(merged) == 6
    empty = Instances.empty((480, 640))
    only_kp = merge_keypoints(empty, _keypoint_instances())
    assert len(only_kp) == 4 and (only_kp.labels == 1).all() and only_kp.masks.shape == (4, 28, 28)
    no_kp = merge_keypoints(
        _mask_instances(), Instances.empty((480, 640), with_masks=False, with_keypoints=True)
    )
    assert len(no_kp) == 4 and np.isnan(no_kp.keypoints).all()


def test_merge_keypoints_errors() -> None:
    with pytest.raises(ValueError, match="no keypoints"):
        merge_keypoints(_mask_instances(), _mask_instances())
    other = Instances(
        image_size=(10, 10), boxes=np.zeros((0, 4)), scores=[], labels=[], keypoints=np.zeros((0, 17, 3))
    )
    with pytest.raises(ValueError, match="image sizes differ"):
        merge_keypoints(_mask_instances(), other)
