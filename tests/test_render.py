from __future__ import annotations

import numpy as np
import pytest

from streamseg.models.coco import COCO_CATEGORIES
from streamseg.postprocess import paste_masks
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
