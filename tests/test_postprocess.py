"""Postprocessing against torchvision: keypoint decoding, mask pasting, rescaling, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torchvision.models.detection import roi_heads, transform
from torchvision.ops import box_iou as tv_box_iou

from streamseg.masks import paste_masks
from streamseg.postprocess import (
    RawDetections,
    box_iou,
    heatmaps_to_keypoints,
    keypoints_from_heatmaps,
    merge_keypoints,
    postprocess,
    resize_boxes,
)
from streamseg.types import Instances


def random_rois(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes from sub-pixel (width clamps to 1) to 900 pixels, fractional corners, varied aspect."""
    w = np.exp(rng.uniform(np.log(0.2), np.log(900), n))
    h = np.exp(rng.uniform(np.log(0.2), np.log(900), n))
    w[:3] = [0.3, 1.0, 56.0]
    h[:3] = [0.7, 2.5, 56.0]
    x1 = rng.uniform(0, 800, n)
    y1 = rng.uniform(0, 600, n)
    return np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)


def torchvision_keypoints(maps: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """torchvision's ``keypointrcnn_inference`` on one image: (N, K, 3) (x, y, score)."""
    with torch.inference_mode():
        xy, scores = roi_heads.keypointrcnn_inference(torch.from_numpy(maps), [torch.from_numpy(rois)])
    return np.concatenate([xy[0][..., :2].numpy(), scores[0][..., None].numpy()], -1)


def noisy_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.standard_normal((n, 17, 56, 56)) * 4).astype(np.float32)


def smooth_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    return (gaussian_filter(rng.standard_normal((n, 17, 56, 56)), (0, 0, 3, 3)) * 10).astype(np.float32)


def peaked_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """One Gaussian bump per keypoint, like a trained model's heatmaps, with a flat background."""
    yy, xx = np.mgrid[0:56, 0:56]
    centres = rng.uniform(0, 55, (n, 17, 2))
    maps = 8 * np.exp(-((xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2) / 8.0)
    return (maps - 2).astype(np.float32)


def flat_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Near-ties everywhere: the first maximum must win, as torch's argmax."""
    return (1.0 + 1e-7 * rng.standard_normal((n, 17, 56, 56))).astype(np.float32)


# -- keypoint decoding ---------------------------------------------------------------------


@pytest.mark.parametrize("make_maps", [noisy_maps, smooth_maps, peaked_maps, flat_maps])
def test_heatmaps_to_keypoints_is_torchvisions(make_maps) -> None:
    rng = np.random.default_rng(0)
    rois = random_rois(rng, 12)
    maps = make_maps(rng, 12)
    ours = heatmaps_to_keypoints(maps, rois)
    assert ours.shape == (12, 17, 3) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, torchvision_keypoints(maps, rois))


def test_keypoints_from_heatmaps_stays_on_the_tensors_device() -> None:
    rng = np.random.default_rng(1)
    rois = random_rois(rng, 5)
    maps = peaked_maps(rng, 5)
    out = keypoints_from_heatmaps(torch.from_numpy(maps), torch.from_numpy(rois).double())
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (5, 17, 3)
    assert out.device == torch.device("cpu")
    np.testing.assert_array_equal(out.numpy(), torchvision_keypoints(maps, rois))


def test_heatmaps_to_keypoints_read_only_and_empty() -> None:
    rng = np.random.default_rng(2)
    rois = random_rois(rng, 3)
    maps = noisy_maps(rng, 3)
    maps.flags.writeable = False
    rois.flags.writeable = False
    np.testing.assert_array_equal(heatmaps_to_keypoints(maps, rois), torchvision_keypoints(maps.copy(), rois.copy()))
    out = heatmaps_to_keypoints(np.zeros((0, 17, 56, 56), np.float32), np.zeros((0, 4), np.float32))
    assert out.shape == (0, 17, 3) and out.dtype == np.float32


# -- paste_masks ------------------------------------------------------------------------


def paste_case() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """300 smooth masks and boxes that all touch a 240x320 image, many across a border, some under a pixel."""
    rng = np.random.default_rng(3)
    n, height, width = 300, 240, 320
    logits = gaussian_filter(rng.standard_normal((n, 28, 28)), (0, 3, 3)) * 8
    masks = (1 / (1 + np.exp(-logits))).astype(np.float32)
    w = np.exp(rng.uniform(np.log(0.2), np.log(500), n))
    h = np.exp(rng.uniform(np.log(0.2), np.log(500), n))
    # Every box touches the image (torchvision's paste fails on boxes wholly outside).
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
    return masks, boxes, (height, width)


def test_paste_masks_matches_torchvision() -> None:
    masks, boxes, (height, width) = paste_case()
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


def test_paste_crops_tensor_is_torchvisions_paste_exactly() -> None:
    """The GPU backends' paste (run here on the CPU) gives torchvision's pixels, every one."""
    from streamseg.masks import paste_crops_tensor

    masks, boxes, size = paste_case()
    ref = roi_heads.paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), size)
    ref = ref[:, 0].numpy() > 0.5
    crops = paste_crops_tensor(torch.from_numpy(masks), boxes, size)
    full = np.zeros_like(ref)
    for i, ((y0, y1, x0, x1), crop) in enumerate(crops):
        assert crop.dtype == np.uint8 and not crop.flags.writeable
        full[i, y0:y1, x0:x1] = crop.astype(bool)
    np.testing.assert_array_equal(full, ref)
    (region, crop), = paste_crops_tensor(torch.ones(1, 28, 28), np.array([[400, 10, 450, 60]], np.float32), size)
    assert region == (0, 0, 0, 0) and crop.shape == (0, 0)  # wholly outside: empty, as mask_crops gives it


def test_mask_crops_are_pasted_once_and_follow_the_instances() -> None:
    from streamseg.masks import mask_crops

    masks, boxes, size = paste_case()
    inst = Instances(size, boxes[:6], np.linspace(0.9, 0.4, 6), [1, 3, 1, 3, 1, 3], masks=masks[:6])
    assert inst.mask_crops is None
    crops = mask_crops(inst)
    assert inst.mask_crops is crops and mask_crops(inst) is crops  # kept, not pasted again
    picked = inst[[4, 1]]
    assert picked.mask_crops[0] is crops[4] and picked.mask_crops[1] is crops[1]  # indexing picks them
    assert inst.replace(track_ids=np.arange(6)).mask_crops is crops  # other fields: kept
    assert inst.replace(boxes=boxes[6:12]).mask_crops is None  # new boxes: dropped
    assert mask_crops(inst, 0.3) is not crops and inst.mask_crops is crops  # another threshold: not kept
    full = paste_masks(inst.masks, inst.boxes, size)
    for (y0, y1, x0, x1), crop in crops:
        assert crop.shape == (y1 - y0, x1 - x0)
    np.testing.assert_array_equal(
        np.stack([np.pad(c, ((r[0], size[0] - r[1]), (r[2], size[1] - r[3]))) for r, c in crops]).astype(bool), full
    )
    with pytest.raises(ValueError, match="mask_crops"):
        Instances(size, boxes[:2], [0.9, 0.8], [1, 1], masks=masks[:2], mask_crops=crops[:1])


def test_merge_keypoints_carries_mask_crops() -> None:
    from streamseg.masks import mask_crops

    instances = _mask_instances()
    mask_crops(instances)
    merged = merge_keypoints(instances, _keypoint_instances())
    assert merged.mask_crops is not None
    recomputed = mask_crops(merged.replace(mask_crops=None))
    for (ra, ca), (rb, cb) in zip(merged.mask_crops, recomputed, strict=True):
        assert ra == rb
        np.testing.assert_array_equal(ca, cb)


# -- postprocess ------------------------------------------------------------------------


def test_postprocess_rescales_like_torchvision() -> None:
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
    inst = postprocess(raw, score_thresh=0.3)
    keep = scores > 0.3  # torchvision's comparison: strictly greater
    assert len(inst) == 3 and inst.image_size == image_size
    tv_boxes = transform.resize_boxes(torch.from_numpy(boxes[keep]), list(input_size), list(image_size))
    np.testing.assert_array_equal(inst.boxes, tv_boxes.numpy())
    xy, kp_scores = roi_heads.heatmaps_to_keypoints(
        torch.from_numpy(maps[keep]), torch.from_numpy(boxes[keep])
    )
    tv_kps = transform.resize_keypoints(xy, list(input_size), list(image_size)).numpy()
    np.testing.assert_array_equal(inst.keypoints[..., :2], tv_kps[..., :2])
    np.testing.assert_array_equal(inst.keypoints[..., 2], kp_scores.numpy())
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


def test_postprocess_of_decoded_keypoints_equals_heatmaps() -> None:
    """A backend that decodes on its device (raw.keypoints) gives what decoding the heatmaps gives."""
    rng = np.random.default_rng(6)
    n = 5
    boxes = random_rois(rng, n)
    maps = peaked_maps(rng, n)
    common = {
        "boxes": boxes,
        "scores": np.array([0.9, 0.2, 0.8, 0.6, 0.4], np.float32),
        "labels": np.array([1, 3, 1, 1, 2]),
        "mask_probs": None,
        "input_size": (600, 800),
        "image_size": (480, 640),
    }
    from_maps = postprocess(RawDetections(keypoint_heatmaps=maps, **common), score_thresh=0.3, keypoint_labels=(1,))
    decoded = RawDetections(keypoint_heatmaps=None, keypoints=heatmaps_to_keypoints(maps, boxes), **common)
    from_kps = postprocess(decoded, score_thresh=0.3, keypoint_labels=(1,))
    np.testing.assert_array_equal(from_kps.keypoints, from_maps.keypoints)
    assert np.isnan(from_kps.keypoints[from_kps.labels != 1]).all()
    assert np.isfinite(from_kps.keypoints[from_kps.labels == 1]).all()
    with pytest.raises(ValueError, match="not both"):
        RawDetections(keypoint_heatmaps=maps, keypoints=decoded.keypoints, **common)
    with pytest.raises(ValueError, match=r"keypoints must be \(N=5, K, 3\)"):
        RawDetections(keypoint_heatmaps=None, keypoints=np.zeros((5, 17, 2)), **common)


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
    assert np.isnan(merged.masks[appended]).all()  # no mask for these instances
    assert merged.mask_present.tolist() == (merged.track_ids >= 0).tolist()
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
