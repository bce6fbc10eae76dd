from __future__ import annotations

import numpy as np
import pytest

from streamseg.masks import paste_masks
from streamseg.models.coco import COCO_CATEGORIES
from streamseg.render import RenderOptions, color_for, draw_hud, render
from streamseg.types import Instances


def scene() -> tuple[np.ndarray, Instances]:
    image = np.full((240, 320, 3), 128, np.uint8)
    masks = np.zeros((2, 28, 28), np.float32)
    masks[0, 4:24, 4:24] = 0.9  # a square inside box 0
    masks[1, :, 10:18] = 0.8  # a vertical bar inside box 1
    kps = np.full((2, 17, 3), np.nan, np.float32)
    kps[1, :, 0] = np.linspace(210, 290, 17)
    kps[1, :, 1] = np.linspace(60, 200, 17)
    kps[1, :, 2] = 1.0
    inst = Instances(
        image_size=(240, 320),
        boxes=[[20, 30, 120, 130], [200, 50, 300, 210]],
        scores=[0.9, 0.8],
        labels=[3, 1],
        masks=masks,
        keypoints=kps,
        track_ids=[-1, 7],
    )
    return image, inst


def test_render_returns_a_new_image_and_leaves_input_untouched() -> None:
    image, inst = scene()
    before = image.copy()
    out = render(image, inst, categories=COCO_CATEGORIES)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)


def test_masks_are_drawn_where_instances_are_and_only_there() -> None:
    image, inst = scene()
    opts = RenderOptions(boxes=False, labels=False, outlines=False, keypoints=False)
    out = render(image, inst, categories=COCO_CATEGORIES, options=opts)
    full = paste_masks(inst.masks, inst.boxes, inst.image_size)
    changed = np.any(out != image, axis=2)
    inside = full.any(axis=0)
    assert changed[inside].mean() > 0.99
    assert not changed[~inside].any()
    # Colour of instance 0 (untracked: colour by class) is blended in.
    y, x = np.argwhere(full[0] & ~full[1])[0]
    expected = 128 * 0.55 + np.array(color_for(3)) * 0.45
    np.testing.assert_allclose(out[y, x], expected, atol=1)


def test_mask_fill_is_the_full_frame_alpha_blend_exactly() -> None:
    """The crop-and-table fill gives the pixels of the plain full-frame formula, bit for bit.

    Reference: each instance's full-size mask (``paste_masks``, torchvision's pasting),
    blended as ``round(pixel * (1 - alpha) + colour * alpha)`` over the whole frame, lowest
    score first; 20 overlapping instances on a real-looking noisy frame, boxes across the edges.
    """
    from streamseg.backends.synthetic import SyntheticReplay

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    inst, _ = SyntheticReplay(categories=COCO_CATEGORIES, model_name="m", keypoints=False).infer(image)
    inst = inst.replace(boxes=inst.boxes + rng.uniform(-40, 40, inst.boxes.shape).astype(np.float32))
    alpha = 0.45
    opts = RenderOptions(boxes=False, labels=False, outlines=False, keypoints=False, mask_alpha=alpha)
    out = render(image, inst, categories=COCO_CATEGORIES, options=opts)
    expected = image.copy()
    full = paste_masks(inst.masks, inst.boxes, inst.image_size)
    for i in np.argsort(inst.scores, kind="stable"):
        colour = np.asarray(color_for(int(inst.labels[i])), np.float32)
        blended = expected.astype(np.float32) * np.float32(1 - alpha) + np.float32(alpha) * colour
        expected[full[i]] = np.clip(blended + np.float32(0.5), 0, 255).astype(np.uint8)[full[i]]
    assert full.any(axis=(1, 2)).sum() >= 15
    np.testing.assert_array_equal(out, expected)


def test_outlines_follow_the_mask_boundary() -> None:
    """Outline pixels lie within the line width (+1 px of simplification) of the mask's boundary, and every
    boundary stretch gets one."""
    import cv2

    image = np.zeros((240, 320, 3), np.uint8)
    _, inst = scene()
    inst = inst[[0]]
    opts = RenderOptions(masks=False, boxes=False, labels=False, keypoints=False, line_width=2)
    out = render(image, inst, categories=COCO_CATEGORIES, options=opts)
    drawn = out.any(axis=2)
    mask = paste_masks(inst.masks, inst.boxes, inst.image_size)[0].astype(np.uint8)
    boundary = mask - cv2.erode(mask, np.ones((3, 3), np.uint8))
    distance = cv2.distanceTransform(1 - boundary, cv2.DIST_L2, 5)
    assert distance[drawn].max() <= 3.0
    assert drawn[boundary.astype(bool)].mean() > 0.95


def test_masks_toggle_off_removes_fill() -> None:
    image, inst = scene()
    off = render(image, inst, categories=COCO_CATEGORIES, options=RenderOptions(masks=False, outlines=False, boxes=False, labels=False, keypoints=False))
    np.testing.assert_array_equal(off, image)


def test_boxes_labels_skeleton_and_hud_change_their_regions() -> None:
    image, inst = scene()
    only_boxes = render(image, inst, categories=COCO_CATEGORIES, options=RenderOptions(masks=False, outlines=False, labels=False, keypoints=False))
    assert np.any(only_boxes[30, 20:120] != 128)  # top edge of box 0
    skeleton = render(image, inst, categories=COCO_CATEGORIES, options=RenderOptions(masks=False, outlines=False, labels=False, boxes=False))
    assert np.any(skeleton[60:200, 210:290] != 128)
    assert np.all(skeleton[:, :150] == 128)  # instance 0 has NaN keypoints: nothing drawn there
    hud = draw_hud(image, ["12.0 fps"])
    assert np.any(hud[:20, :60] != 128) and np.all(hud[100:] == 128)


def test_track_ids_pick_stable_colours() -> None:
    assert color_for(1, 7) == color_for(3, 7)  # same track, same colour whatever the class
    assert color_for(1, -1) != color_for(3, -1)


def test_size_mismatch_raises() -> None:
    image, inst = scene()
    with pytest.raises(ValueError, match="differs"):
        render(image[:100], inst, categories=COCO_CATEGORIES)


def test_trails_and_predicted_boxes() -> None:
    from streamseg.render import TrackTrails

    image, inst = scene()
    trails = TrackTrails(length=5)
    for dx in (0, 10, 20):
        trails.update(inst.replace(boxes=inst.boxes + np.array([dx, 0, dx, 0], np.float32)))
    assert len(trails.points(7)) == 3 and trails.points(-1) == []
    assert trails.points(7)[0] == (250.0, 130.0)
    opts = RenderOptions(masks=False, outlines=False, labels=False, keypoints=False, boxes=False)
    with_trail = render(image, inst, categories=COCO_CATEGORIES, options=opts, trails=trails)
    assert np.any(with_trail[130, 250:270] != 128)  # the polyline between the centres
    solid = render(image, inst, categories=COCO_CATEGORIES, options=RenderOptions(masks=False, outlines=False, labels=False, keypoints=False))
    dashed = render(image, inst, categories=COCO_CATEGORIES, options=RenderOptions(masks=False, outlines=False, labels=False, keypoints=False), predicted=True)
    top_solid = np.any(solid[30, 20:120] != 128, axis=-1).mean()
    top_dashed = np.any(dashed[30, 20:120] != 128, axis=-1).mean()
    assert top_solid > 0.95 and 0.3 < top_dashed < 0.8


# -- label placement (issue 13, item 7) ------------------------------------------------------


def crowded_scene() -> tuple[np.ndarray, Instances, list[str]]:
    """A 720p frame with 20 people: a tight crowd in a row, a cluster, and boxes at the
    top-left under the HUD, at the right, bottom and top edges."""
    h, w = 720, 1280
    boxes = [[10, 8, 230, 330]]  # top-left, under the HUD
    boxes += [[300 + 45 * k, 200 + 6 * (k % 3), 420 + 45 * k, 560] for k in range(10)]  # a row, 45 px apart
    boxes += [[820 + 30 * k, 90 + 20 * k, 980 + 30 * k, 400] for k in range(5)]  # a cluster
    boxes += [[1190, 420, 1285, 640], [560, 655, 700, 725], [300, -5, 420, 120]]  # right, bottom, top edges
    boxes += [[1000, 450, 1150, 700]]
    n = len(boxes)
    rng = np.random.default_rng(3)
    inst = Instances(
        image_size=(h, w),
        boxes=np.asarray(boxes, np.float32),
        scores=rng.permutation(np.linspace(0.5, 0.99, n)).astype(np.float32),
        labels=np.ones(n, np.int64),
        masks=np.zeros((n, 28, 28), np.float32),
        keypoints=None,
        track_ids=np.arange(10, 10 + n),
    )
    return np.full((h, w, 3), 128, np.uint8), inst, ["  25.0 fps", "model 120 ms"]


def intersects(a: np.ndarray, b: np.ndarray | tuple[int, ...]) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_labels_stay_inside_the_frame_and_clear_of_the_hud_and_each_other() -> None:
    from streamseg.render import hud_rect, label_rects

    image, inst, hud = crowded_scene()
    assert len(inst) == 20
    rects = label_rects(inst, categories=COCO_CATEGORIES, hud=hud)
    hud_box = hud_rect(image.shape[:2], hud)
    assert rects.shape == (20, 4) and hud_box is not None and hud_box[2] > 100 and hud_box[3] > 40
    h, w = image.shape[:2]
    assert (rects[:, 0] >= 0).all() and (rects[:, 1] >= 0).all()
    assert (rects[:, 2] <= w).all() and (rects[:, 3] <= h).all()
    assert (rects[:, 2] - rects[:, 0] > 100).all()  # "person 0.93 #12" at 720p
    assert not [i for i, r in enumerate(rects) if intersects(r, hud_box)]
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20) if intersects(rects[i], rects[j])]
    assert not pairs
    # render() draws them there: each rectangle is filled with its instance's colour
    opts = RenderOptions(masks=False, outlines=False, boxes=False, keypoints=False)
    out = render(image, inst, categories=COCO_CATEGORIES, options=opts, hud=hud)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        region = out[y1:y2, x1:x2].reshape(-1, 3)
        fill = np.all(region == color_for(1, int(inst.track_ids[i])), axis=1).mean()
        assert fill > 0.5, (i, fill)


def test_label_goes_above_the_box_and_inside_its_top_when_that_is_taken() -> None:
    from streamseg.render import place_labels

    boxes = np.array([[100, 200, 300, 400], [120, 205, 320, 400], [600, 10, 700, 100]], np.float32)
    rects = place_labels([(150, 30)] * 3, boxes, np.array([0.9, 0.8, 0.7]), (480, 800))
    assert tuple(rects[0]) == (100, 170, 250, 200)  # above its top-left corner
    assert tuple(rects[1]) == (120, 205, 270, 235)  # above is taken: inside, at its top
    assert tuple(rects[2]) == (600, 10, 750, 40)  # no room above (top edge): inside at its top
    # the higher score chooses first, whatever the order of the boxes
    swapped = place_labels([(150, 30)] * 2, boxes[:2], np.array([0.8, 0.9]), (480, 800))
    assert tuple(swapped[1]) == (120, 175, 270, 205)
    assert tuple(swapped[0]) == (100, 230, 250, 260)  # above and top corners taken: one label lower


def test_labels_at_the_frame_edges_and_under_the_hud() -> None:
    from streamseg.render import place_labels

    boxes = np.array([[5, 5, 200, 300], [750, 300, 810, 470], [100, 460, 300, 500]], np.float32)
    hud = (0, 0, 160, 60)
    rects = place_labels([(150, 30)] * 3, boxes, np.array([0.9, 0.8, 0.7]), (480, 800), avoid=[hud])
    assert not intersects(rects[0], hud) and rects[0][0] >= 0 and rects[0][1] >= 0
    assert tuple(rects[1]) == (650, 270, 800, 300)  # shifted left into the frame
    assert tuple(rects[2]) == (100, 430, 250, 460)  # above the box at the bottom edge
    assert (rects[:, 2] <= 800).all() and (rects[:, 3] <= 480).all()
    assert place_labels([], np.zeros((0, 4)), np.zeros(0), (480, 800)).shape == (0, 4)
