"""Sinks: H.264 MP4 written with PyAV and read back; JSONL with COCO RLE masks."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_util

from streamseg.errors import SinkError
from streamseg.masks import paste_masks
from streamseg.models.coco import COCO_CATEGORIES
from streamseg.sinks import JsonlWriter, VideoWriter, read_jsonl, result_to_dict
from streamseg.sources import VideoFileSource
from streamseg.types import Frame, FrameResult, Instances
from tests.conftest import data_path


def gradient(height: int, width: int, shift: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 RGB test picture that survives lossy coding."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [(xx * 255 // width + shift) % 256, yy * 255 // height, np.full_like(xx, 128)], axis=-1
    ).astype(np.uint8)


def decode(path: Path) -> tuple[av.video.stream.VideoStream, list[float], list[np.ndarray]]:
    """Stream info, pts in seconds from the stream start, and RGB frames of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        pts, images = [], []
        for frame in container.decode(stream):
            pts.append(float((frame.pts - start) * stream.time_base))
            images.append(frame.to_ndarray(format="rgb24"))
        return stream, pts, images


# -- VideoWriter ---------------------------------------------------------------------------


def test_video_round_trip_keeps_size_rate_and_timing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    image = gradient(576, 768)
    with VideoWriter(out, width=768, height=576, fps=Fraction(10)) as writer:
        for k in range(30):
            writer.write(image, pts_s=k / 10)
    assert writer.frames_written == 30 and writer.closed
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.profile == "High"
        assert stream.format.name == "yuv420p"
        assert (stream.width, stream.height) == (768, 576)
        assert stream.average_rate == 10
        assert stream.frames == 30
    _, pts, images = decode(out)
    assert len(pts) == 30
    np.testing.assert_allclose(pts, np.arange(30) / 10, atol=1e-3)
    assert np.abs(images[0].astype(int) - image).mean() < 3  # colours survive (BT.709 tagged)
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: the index comes first


def test_video_round_trip_of_real_frames_with_their_timestamps(tmp_path: Path) -> None:
    source = VideoFileSource(data_path("videos", "vtest.avi"), max_frames=30)
    out = tmp_path / "vtest.mp4"
    with source:
        info = source.info
        assert info is not None
        with VideoWriter(out, width=info.width, height=info.height, fps=info.fps) as writer:
            inputs = [(f.pts_s, f.image) for f in source]
            for pts_s, image in inputs:
                writer.write(image, pts_s)
    stream, pts, images = decode(out)
    assert stream.average_rate == 10 and len(pts) == 30
    np.testing.assert_allclose(pts, [p for p, _ in inputs], atol=1e-3)
    assert np.abs(images[15].astype(int) - inputs[15][1]).mean() < 6


def test_variable_frame_rate_timing_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "vfr.mp4"
    times = [5.0, 5.04, 5.1, 5.3, 5.31, 5.5, 5.52, 5.9, 6.0, 6.5]  # origin: the first frame
    with VideoWriter(out, width=64, height=48, fps=None) as writer:
        for k, t in enumerate(times):
            writer.write(gradient(48, 64, shift=20 * k), t)
    _, pts, _ = decode(out)
    np.testing.assert_allclose(pts, np.array(times) - times[0], atol=1e-3)


def test_ntsc_rate_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "ntsc.mp4"
    fps = Fraction(30000, 1001)
    with VideoWriter(out, width=64, height=48, fps=29.97002997) as writer:  # a float works too
        assert writer.fps == fps
        for k in range(12):
            writer.write(gradient(48, 64), float(k / fps))
    stream, pts, _ = decode(out)
    assert stream.average_rate == fps
    np.testing.assert_allclose(pts, [float(k / fps) for k in range(12)], atol=1e-3)


def test_non_increasing_pts_are_nudged(tmp_path: Path) -> None:
    out = tmp_path / "nudge.mp4"
    with VideoWriter(out, width=64, height=48, fps=10) as writer:
        for t in [0.0, 0.1, 0.1, 0.05, 0.2]:
            writer.write(gradient(48, 64), t)
    _, pts, _ = decode(out)
    assert len(pts) == 5 and all(a < b for a, b in zip(pts, pts[1:], strict=False))
    assert pts[1] == pytest.approx(0.1, abs=1e-3) and pts[4] == pytest.approx(0.2, abs=1e-3)


def test_odd_size_is_padded_by_edge_replication(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    image = gradient(273, 641)
    with VideoWriter(out, width=641, height=273, fps=25) as writer:
        assert (writer.out_width, writer.out_height) == (642, 274)
        for k in range(3):
            writer.write(image, k / 25)
    stream, _, images = decode(out)
    assert (stream.width, stream.height) == (642, 274)
    got = images[0].astype(int)
    assert np.abs(got[:273, :641] - image).mean() < 3  # nothing cropped or shifted
    assert np.abs(got[:273, 641] - image[:, 640]).mean() < 3  # right column repeats the edge
    assert np.abs(got[273, :641] - image[272]).mean() < 3  # bottom row repeats the edge


def test_odd_sized_real_video_follows_the_even_size_rule_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cityCC0.mpg is 720x405: yuv420p H.264 cannot be odd (libx264 refuses it, and SPS
    cropping is in 2-pixel steps), so the MP4 is 720x406, decodes fully and the writer logs it."""
    import logging

    from streamseg.sinks.video import encoded_size

    assert encoded_size(720, 405) == (720, 406) and encoded_size(641, 273) == (642, 274)
    assert encoded_size(1280, 720) == (1280, 720)
    monkeypatch.setattr("streamseg.sinks.video._reported_odd_sizes", set())  # as in a fresh process
    caplog.set_level(logging.WARNING, logger="streamseg")
    source = VideoFileSource(data_path("videos", "cityCC0.mpg"), max_frames=12)
    out = tmp_path / "city.mp4"
    with source:
        info = source.info
        assert info is not None and (info.width, info.height) == (720, 405)
        with VideoWriter(out, width=info.width, height=info.height, fps=info.fps) as writer:
            inputs = [f.image for f in source]
            for k, image in enumerate(inputs):
                writer.write(image, k / 25)
    stream, pts, images = decode(out)
    assert (stream.width, stream.height) == encoded_size(720, 405)
    assert len(images) == len(inputs) == 12  # every frame decodes
    assert all(im.shape == (406, 720, 3) for im in images)
    assert np.abs(images[5][:405].astype(int) - inputs[5]).mean() < 6  # nothing cropped or shifted
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("720x405" in m and "720x406" in m for m in messages), messages


def test_close_after_partial_writing_gives_a_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "partial.mp4"
    writer = VideoWriter(out, width=128, height=96, fps=25)
    with pytest.raises(RuntimeError, match="pipeline failed"):
        with writer:
            for k in range(7):
                writer.write(gradient(96, 128, shift=k), k / 25)
            raise RuntimeError("pipeline failed")
    writer.close()  # idempotent
    _, pts, _ = decode(out)
    assert len(pts) == 7
    with pytest.raises(SinkError, match="closed"):
        writer.write(gradient(96, 128), 1.0)


def test_video_writer_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(SinkError, match="cannot write video"):
        VideoWriter(blocker / "out.mp4", width=64, height=48, fps=10)
    with pytest.raises(SinkError, match="is a directory"):
        VideoWriter(tmp_path, width=64, height=48, fps=10)
    with pytest.raises(SinkError, match="no encoder named 'nope'"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, fps=10, codec="nope")
    with VideoWriter(tmp_path / "y.mp4", width=64, height=48, fps=10) as writer:
        with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"):
            writer.write(np.zeros((48, 65, 3), np.uint8), 0.0)
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 3), np.float32), 0.0)


# -- JsonlWriter ---------------------------------------------------------------------------

H, W = 120, 160


def make_result(index: int, *, masks: bool = True, keypoints: bool = True) -> FrameResult:
    rng = np.random.default_rng(index)
    boxes = np.array(
        [[10.25, 20.5, 60.75, 100.0], [-15.0, 90.0, 40.0, 140.0], [150.0, 5.0, 158.5, 9.0]], np.float32
    )
    kps = np.zeros((3, 17, 3), np.float32)
    kps[:, :, 0] = rng.uniform(0, W, (3, 17))
    kps[:, :, 1] = rng.uniform(0, H, (3, 17))
    kps[:, :, 2] = rng.normal(3, 2, (3, 17))
    kps[1] = np.nan  # e.g. a car: no keypoints for this instance
    instances = Instances(
        image_size=(H, W),
        boxes=boxes,
        scores=np.array([0.98765, 0.5, 0.12345], np.float32),
        labels=np.array([1, 3, 2]),
        masks=rng.uniform(0, 1, (3, 28, 28)).astype(np.float32) if masks else None,
        keypoints=kps if keypoints else None,
        track_ids=np.array([7, -1, 12]),
    )
    frame = Frame("cam.mp4", index, index / 30, 0.0, np.zeros((H, W, 3), np.uint8))
    return FrameResult(frame, instances, {"decode": 1.23456, "model": 100.0})


# pycocotools 2.0.x's decode passes copy=False to numpy 2 (its own warning, not ours).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_jsonl_lines_rle_boxes_and_keypoints(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    results = [make_result(k) for k in range(3)]
    with JsonlWriter(out, categories=COCO_CATEGORIES) as writer:
        for k, result in enumerate(results):
            writer.write(result)
            lines = out.read_text().splitlines()  # flushed line by line, before close()
            assert len(lines) == k + 1
            json.loads(lines[-1])
    assert writer.frames_written == 3

    rows = list(read_jsonl(out))
    assert rows == [result_to_dict(r, COCO_CATEGORIES) for r in results]
    row, result = rows[1], results[1]
    inst = result.instances
    assert row["frame"] == 1 and row["pts"] == round(1 / 30, 6) and row["source"] == "cam.mp4"
    assert row["image_size"] == [H, W]
    assert row["timings_ms"] == {"decode": 1.235, "model": 100.0}
    full = paste_masks(inst.masks, inst.boxes, (H, W))
    for i, obj in enumerate(row["instances"]):
        assert obj["track_id"] == int(inst.track_ids[i])
        assert obj["category_id"] == int(inst.labels[i])
        assert obj["label"] == COCO_CATEGORIES[int(inst.labels[i])]
        assert obj["score"] == round(float(inst.scores[i]), 4)
        x1, y1, x2, y2 = inst.boxes[i].tolist()
        assert obj["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.001)
        seg = obj["segmentation"]
        assert seg["size"] == [H, W] and isinstance(seg["counts"], str)
        decoded = mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), full[i])
    assert [o["label"] for o in row["instances"]] == ["person", "car", "bicycle"]
    assert row["instances"][0]["bbox"] == [10.25, 20.5, 50.5, 79.5]
    assert full[1].any() and not full[1][:, -1].any()  # partly outside: clipped, not dropped

    with_kps, no_kps = row["instances"][0], row["instances"][1]
    assert "keypoints" not in no_kps and "keypoint_scores" not in no_kps
    kps = np.array(with_kps["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(kps[:, :2], inst.keypoints[0, :, :2], atol=0.0005 + 1e-6)
    assert (kps[:, 2] == 2).all()
    np.testing.assert_allclose(with_kps["keypoint_scores"], inst.keypoints[0, :, 2], atol=5e-5)


def test_rle_from_the_crop_equals_pycocotools_encode_of_the_full_mask() -> None:
    """The JSONL's RLE is built from the box's crop; it must be pycocotools' string for the full-size mask.

    Boxes inside, across every edge and corner, outside, tiny and image-filling; masks full,
    empty and random, on images of 1..60 px a side (1-pixel columns and rows included).
    """
    from streamseg.coco_results import crop_rle
    from streamseg.masks import mask_crops

    rng = np.random.default_rng(1)
    cases = 0
    for k in range(2000):
        h, w = (int(v) for v in rng.integers(1, 61, 2))
        mask = rng.random((28, 28)).astype(np.float32)
        if k % 5 == 0:
            mask[:] = 1.0
        elif k % 7 == 0:
            mask[:] = 0.0
        xs, ys = np.sort(rng.uniform(-20, 80, 2)), np.sort(rng.uniform(-20, 80, 2))
        box = np.array([xs[0], ys[0], xs[1], ys[1]], np.float32)
        full = paste_masks(mask[None], box[None], (h, w))[0]
        expected = mask_util.encode(np.asfortranarray(full.astype(np.uint8)))
        inst = Instances((h, w), box[None], [0.9], [1], masks=mask[None])
        got = crop_rle(*mask_crops(inst)[0], (h, w))
        assert got == {"size": [h, w], "counts": expected["counts"].decode("ascii")}, (k, h, w, box.tolist())
        cases += full.any()
    assert cases > 500  # most cases have pixels inside


def test_jsonl_without_masks_or_keypoints_and_empty_frames(tmp_path: Path) -> None:
    row = result_to_dict(make_result(0, masks=False, keypoints=False), COCO_CATEGORIES)
    assert all("segmentation" not in o and "keypoints" not in o for o in row["instances"])
    frame = Frame("x", 0, 0.0, 0.0, np.zeros((H, W, 3), np.uint8))
    empty = FrameResult(frame, Instances.empty((H, W)))
    assert result_to_dict(empty, COCO_CATEGORIES)["instances"] == []
    odd = make_result(0).instances.replace(labels=np.array([1, 3, 95]))
    row = result_to_dict(FrameResult(frame, odd), COCO_CATEGORIES)
    assert row["instances"][2]["label"] == "95"  # outside the category list: its number


def test_jsonl_interrupted_last_line_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    writer = JsonlWriter(out, categories=COCO_CATEGORIES)
    writer.write(make_result(0))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(SinkError, match="closed"):
        writer.write(make_result(1))
    with out.open("a") as f:
        f.write('{"frame": 1, "pts"')  # a run killed mid-write
    assert [r["frame"] for r in read_jsonl(out)] == [0]
    with out.open("a") as f:
        f.write("\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2"):
        list(read_jsonl(out))

    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(SinkError, match="cannot write results"):
        JsonlWriter(blocker / "r.jsonl", categories=COCO_CATEGORIES)


def test_keypoint_only_instances_have_no_segmentation(tmp_path: Path) -> None:
    """Persons found only by the keypoint model (``--keypoints``) carry no mask: no ``segmentation`` key.

    An all-zero RLE would be a false positive in COCO segm evaluation. A mask-model instance whose
    mask is empty after thresholding keeps its (empty) RLE: the decision is per instance.
    """
    from streamseg.postprocess import merge_keypoints

    masks = np.full((2, 28, 28), 0.9, np.float32)
    masks[1] = 0.2  # below 0.5 everywhere: an empty, but real, mask
    mask_model = Instances((H, W), [[10, 10, 50, 100], [100, 10, 150, 100]], [0.9, 0.8], [1, 3], masks=masks)
    kps = np.full((2, 17, 3), 30.0, np.float32)
    kp_model = Instances((H, W), [[12, 10, 50, 100], [60, 5, 90, 110]], [0.95, 0.7], [1, 1], keypoints=kps)
    merged = merge_keypoints(mask_model, kp_model)
    assert len(merged) == 3
    frame = Frame("cam.mp4", 0, 0.0, 0.0, np.zeros((H, W, 3), np.uint8))
    rows = result_to_dict(FrameResult(frame, merged), COCO_CATEGORIES)["instances"]
    by_box = {tuple(round(v) for v in r["bbox"][:2]): r for r in rows}
    assert "segmentation" in by_box[(10, 10)] and "keypoints" in by_box[(10, 10)]  # paired person
    empty = by_box[(100, 10)]["segmentation"]  # the car: no keypoints, an empty mask of its own
    assert not mask_util.decode({"size": empty["size"], "counts": empty["counts"].encode()}).any()
    only_kp = by_box[(60, 5)]
    assert "segmentation" not in only_kp and len(only_kp["keypoints"]) == 51


def test_jsonl_boxes_keep_a_thousandth_of_a_pixel() -> None:
    """x1 + w and y1 + h give back x2 and y2 within 0.001 px (0.01 px rounding was the parity tolerance itself)."""
    rng = np.random.default_rng(3)
    x1y1 = rng.uniform(0, 1200, (200, 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(0.5, 700, (200, 2))], axis=1).astype(np.float32)
    inst = Instances((1080, 1920), boxes, np.full(200, 0.9), np.ones(200))
    frame = Frame("cam.mp4", 0, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8))
    rows = result_to_dict(FrameResult(frame, inst), COCO_CATEGORIES)["instances"]
    xywh = np.array([r["bbox"] for r in rows], np.float64)
    np.testing.assert_allclose(xywh[:, :2], boxes[:, :2], rtol=0, atol=0.0005 + 1e-9)
    np.testing.assert_allclose(xywh[:, :2] + xywh[:, 2:], boxes[:, 2:], rtol=0, atol=0.001)


def test_to_coco_is_the_jsonl_fields_and_loads_in_pycocotools() -> None:
    from pycocotools.coco import COCO

    result = make_result(2)
    inst = result.instances
    dets = inst.to_coco(139)
    rows = result_to_dict(result, COCO_CATEGORIES)["instances"]
    assert len(dets) == len(rows) == 3
    for det, row in zip(dets, rows):
        assert det == {"image_id": 139, **{k: row[k] for k in det if k != "image_id"}}
        assert set(row) - set(det) <= {"track_id", "label", "keypoint_scores"}
    assert "keypoints" in dets[0] and "keypoints" not in dets[1]  # the NaN row
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 139, "height": H, "width": W, "file_name": "000000000139.jpg"}],
        "annotations": [],
        "categories": [{"id": c, "name": COCO_CATEGORIES[c]} for c in (1, 2, 3)],
    }
    gt.createIndex()
    loaded = gt.loadRes(dets)
    assert sorted(loaded.getImgIds()) == [139] and len(loaded.getAnnIds()) == 3
    # A model whose labels are not COCO ids maps them; an unmapped label is an error.
    assert [d["category_id"] for d in inst.to_coco(1, categories={1: 90, 2: 91, 3: 92})] == [90, 92, 91]
    with pytest.raises(ValueError, match="label 3"):
        inst.to_coco(1, categories={1: 1, 2: 2})


def test_model_labels_are_the_coco_category_ids_of_val2017() -> None:
    """torchvision's 91-entry label list is indexed by COCO category id: checked against the real annotation file."""
    gt = json.loads(data_path("coco", "val2017-80", "instances_val2017.json").read_text())
    assert len(gt["categories"]) == 80
    for cat in gt["categories"]:
        assert COCO_CATEGORIES[cat["id"]] == cat["name"]


def test_video_output_letterboxes_frames_of_other_sizes_into_the_first(tmp_path: Path) -> None:
    """A folder of real photos of different sizes: the MP4 has the first's size, the others letterboxed."""
    import cv2

    from streamseg.sinks import VideoOutput
    from streamseg.sinks.video import letterbox

    files = sorted(data_path("coco", "val2017-80", "images").glob("*.jpg"))[:3]
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    assert [im.shape[:2] for im in images] == [(480, 640), (424, 640), (333, 500)]
    out = tmp_path / "photos.mp4"
    output = VideoOutput(out, fps=25)
    for k, image in enumerate(images):
        frame = Frame("photos", k, k / 25, 0.0, image, file_name=files[k].name)
        output.write(FrameResult(frame, Instances.empty(image.shape[:2])), image)
    output.close()
    stream, _, decoded = decode(out)
    assert (stream.width, stream.height) == (640, 480) and len(decoded) == 3
    # 640x424 in 640x480: full width, 28-pixel black bars above and below.
    assert letterbox(images[1], 480, 640)[28:452].tolist() == images[1].tolist()
    bars = decoded[1][np.r_[0:26, 454:480]]
    assert bars.max() <= 24  # black, up to H.264's ringing at the edge
    assert np.abs(decoded[1][30:450].astype(int) - images[1][2:422]).mean() < 6
    # 500x333 in 640x480: scale 1.28 -> 640x426, bars of 27 above and 27 below.
    boxed = letterbox(images[2], 480, 640)
    assert boxed[:27].max() == 0 and boxed[453:].max() == 0 and boxed[27:453].mean() > 20
    np.testing.assert_array_equal(boxed[27:453], cv2.resize(images[2], (640, 426), interpolation=cv2.INTER_LINEAR))
    assert np.abs(decoded[2].astype(int) - boxed).mean() < 6


def test_jsonl_records_the_image_file_name() -> None:
    image = np.zeros((H, W, 3), np.uint8)
    photo = FrameResult(Frame("photos", 0, 0.0, 0.0, image, file_name="000000000139.jpg"), Instances.empty((H, W)))
    assert result_to_dict(photo, COCO_CATEGORIES)["file_name"] == "000000000139.jpg"
    assert result_to_dict(make_result(0), COCO_CATEGORIES)["file_name"] is None  # a video frame


def test_coco_json_writer_is_a_valid_results_list_frame_by_frame(tmp_path: Path) -> None:
    from streamseg.coco_results import coco_image_id
    from streamseg.sinks import CocoJsonWriter

    out = tmp_path / "results.json"
    writer = CocoJsonWriter(out)
    photo = Frame("photos", 4, 0.0, 0.0, np.zeros((H, W, 3), np.uint8), file_name="000000000139.jpg")
    writer.write(FrameResult(photo, make_result(0).instances))
    writer.write(make_result(1))  # a video frame: image id = frame + 1 = 2
    writer.write(FrameResult(photo, Instances.empty((H, W))))
    assert out.read_text().startswith("[\n{")  # flushed as it goes
    writer.close()
    writer.close()  # idempotent
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == [139] * 3 + [2] * 3 and writer.results_written == 6
    assert results[3:] == make_result(1).instances.to_coco(2)
    with pytest.raises(SinkError, match="closed"):
        writer.write(make_result(2))
    empty = tmp_path / "empty.json"
    CocoJsonWriter(empty).close()
    assert json.loads(empty.read_text()) == []
    named = Frame("photos", 0, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8), file_name="holiday.jpg")
    assert coco_image_id(named) == 1 and coco_image_id(named.__class__("m", 0, 0, 0, named.image, "000001.jpg")) == 1
