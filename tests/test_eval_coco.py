"""`streamseg eval`: COCO AP with pycocotools, for COCO results and our JSONL."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pycocotools import mask as mask_util

from streamseg.datasets.demo_export import write_clip
from streamseg.errors import ConfigError, SourceError
from streamseg.eval.coco import add_parser, evaluate_coco, format_summary, run

from .conftest import data_path


def _rle(segmentation: Any, h: int, w: int) -> dict[str, Any]:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) as compressed RLE."""
    if isinstance(segmentation, list):
        rle = mask_util.merge(mask_util.frPyObjects(segmentation, h, w))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_util.frPyObjects(segmentation, h, w)
    else:
        return segmentation
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def gt_as_results(gt: dict[str, Any], dx: float = 0.0) -> list[dict[str, Any]]:
    """Every non-crowd GT annotation as a result with score 1 (boxes shifted right by ``dx``)."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    out = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        x, y, w, h = ann["bbox"]
        res = {
            "image_id": ann["image_id"],
            "category_id": ann["category_id"],
            "score": 1.0,
            "bbox": [x + dx, y, w, h],
            "segmentation": _rle(ann["segmentation"], *sizes[ann["image_id"]]),
        }
        if ann.get("num_keypoints", 0) > 0:
            res["keypoints"] = ann["keypoints"]
        out.append(res)
    return out


@pytest.fixture(scope="module")
def val80() -> Path:
    return data_path("coco", "val2017-80", "instances_val2017.json")


@pytest.fixture(scope="module")
def kp4() -> Path:
    return data_path("coco", "keypoints-4", "person_keypoints.json")


def test_gt_scores_one_on_val2017(val80: Path) -> None:
    gt = json.loads(val80.read_text())
    stats = evaluate_coco(gt_as_results(gt), val80, iou_types=("bbox", "segm"))
    assert len(stats["bbox"]) == len(stats["segm"]) == 12
    for iou_type in ("bbox", "segm"):
        assert stats[iou_type][0] == pytest.approx(1.0)
        assert stats[iou_type][1] == pytest.approx(1.0)


def test_gt_scores_one_on_keypoints(kp4: Path) -> None:
    gt = json.loads(kp4.read_text())
    stats = evaluate_coco(gt_as_results(gt), kp4)
    assert len(stats["keypoints"]) == 10
    for iou_type in ("bbox", "segm", "keypoints"):
        assert stats[iou_type][0] == pytest.approx(1.0), iou_type


def test_shifted_boxes_score_lower(val80: Path) -> None:
    gt = json.loads(val80.read_text())
    ap = [evaluate_coco(gt_as_results(gt, dx), val80, iou_types=("bbox",))["bbox"][0] for dx in (0, 4, 12)]
    assert ap[0] == pytest.approx(1.0)
    assert ap[0] > ap[1] > ap[2]


def _jsonl_from_gt(gt: dict[str, Any], path: Path, frame_of: dict[int, int]) -> None:
    """Write our JSONL schema from GT annotations (frame = frame_of[image_id])."""
    by_image: dict[int, list] = {img["id"]: [] for img in gt["images"]}
    for res in gt_as_results(gt):
        inst = {k: res[k] for k in ("category_id", "score", "bbox", "segmentation")}
        inst.update(track_id=-1, label="x")
        if "keypoints" in res:
            inst["keypoints"] = res["keypoints"]
        by_image[res["image_id"]].append(inst)
    lines = [
        json.dumps({"frame": frame_of[i], "pts": 0.0, "image_size": [240, 320], "instances": insts})
        for i, insts in by_image.items()
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_clip(tmp_path_factory.mktemp("clip"), seed=11, num_frames=8)


def test_jsonl_results_frame_index(clip: dict[str, Path], tmp_path: Path) -> None:
    gt = json.loads(clip["coco"].read_text())
    jsonl = tmp_path / "results.jsonl"
    _jsonl_from_gt(gt, jsonl, {img["id"]: img["frame_index"] for img in gt["images"]})
    stats = evaluate_coco(jsonl, clip["coco"])
    assert [stats[t][0] for t in ("bbox", "segm", "keypoints")] == pytest.approx([1.0, 1.0, 1.0])
    # Off by one frame: the wrong image ids, lower AP.
    _jsonl_from_gt(gt, jsonl, {img["id"]: img["frame_index"] + 1 for img in gt["images"]})
    assert evaluate_coco(jsonl, clip["coco"], iou_types=("segm",))["segm"][0] < 0.9


def test_jsonl_fallback_image_id_is_frame_plus_one(clip: dict[str, Path], tmp_path: Path) -> None:
    gt = json.loads(clip["coco"].read_text())
    for img in gt["images"]:
        del img["frame_index"]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    jsonl = tmp_path / "results.jsonl"
    _jsonl_from_gt(gt, jsonl, {img["id"]: img["id"] - 1 for img in gt["images"]})
    assert evaluate_coco(jsonl, gt_path, iou_types=("bbox",))["bbox"][0] == pytest.approx(1.0)


def test_no_results_and_summary(clip: dict[str, Path], tmp_path: Path) -> None:
    stats = evaluate_coco([], clip["coco"])
    assert stats["bbox"] == [0.0] * 12 and stats["keypoints"] == [0.0] * 10
    text = format_summary(stats)
    lines = text.splitlines()
    assert len(lines) == 3 + 12 + 12 + 10
    assert lines[1] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000"
    assert lines[-1] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets= 20 ] = 0.000"


def test_cli_run_prints_summary(
    clip: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads(clip["coco"].read_text())
    results = tmp_path / "results.json"
    results.write_text(json.dumps(gt_as_results(gt)))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    out_json = tmp_path / "stats.json"
    args = parser.parse_args(["eval", str(results), str(clip["coco"]), "--json", str(out_json)])
    assert args.func is run and run(args) == 0
    printed = capsys.readouterr().out
    assert "IoU metric: keypoints" in printed and printed.count("Average Precision") == 5 + 6 + 6
    assert json.loads(out_json.read_text())["segm"][0] == pytest.approx(1.0)


def test_bad_input(clip: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such"):
        evaluate_coco(tmp_path / "missing.jsonl", clip["coco"])
    with pytest.raises(SourceError, match="no such"):
        evaluate_coco([], tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="iou type"):
        evaluate_coco([], clip["coco"], iou_types=("masks",))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid json"):
        evaluate_coco(bad, clip["coco"])
    not_coco = tmp_path / "gt.json"
    not_coco.write_text(json.dumps({"images": []}))
    with pytest.raises(ConfigError, match="not a COCO json"):
        evaluate_coco([], not_coco)
    gt = copy.deepcopy(json.loads(clip["coco"].read_text()))
    assert evaluate_coco([], gt, iou_types=("bbox",))["bbox"][0] == 0.0


def _jsonl_by_file_name(gt: dict[str, Any], path: Path, images: list[dict[str, Any]]) -> None:
    """Our JSONL of an image-folder run on ``images``: frames 0.. in that order, each with its file name."""
    by_image: dict[int, list] = {img["id"]: [] for img in images}
    for res in gt_as_results(gt):
        if res["image_id"] in by_image:
            inst = {k: res[k] for k in ("category_id", "score", "bbox", "segmentation")}
            by_image[res["image_id"]].append({**inst, "track_id": -1, "label": "x"})
    lines = [
        json.dumps({"frame": k, "pts": k / 25, "source": "val2017", "file_name": img["file_name"],
                    "image_size": [img["height"], img["width"]], "instances": by_image[img["id"]]})
        for k, img in enumerate(images)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def test_jsonl_of_an_image_folder_maps_by_file_name_and_scores_its_images(val80: Path, tmp_path: Path) -> None:
    """A run on 10 of the 80 real val2017 images: frames map by file name, and only those images are scored."""
    gt = json.loads(val80.read_text())
    images = sorted(gt["images"], key=lambda img: img["file_name"])[:10]  # a folder's order, not the ids'
    assert [img["id"] for img in images] != list(range(1, 11))
    jsonl = tmp_path / "results.jsonl"
    _jsonl_by_file_name(gt, jsonl, images)
    stats = evaluate_coco(jsonl, val80, iou_types=("bbox", "segm"))
    assert stats["bbox"][0] == pytest.approx(1.0) and stats["segm"][0] == pytest.approx(1.0)
    # The same run without its file names would be mapped by frame index: nothing matches.
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    jsonl.write_text("".join(json.dumps({**r, "file_name": None}) + "\n" for r in lines))
    with pytest.raises(ConfigError, match="none of its 10 frames .* matches an image of the ground truth by frame"):
        evaluate_coco(jsonl, val80)


def test_results_that_match_no_ground_truth_image_fail_loudly(
    val80: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads(val80.read_text())
    jsonl = tmp_path / "other.jsonl"
    other = [{**img, "file_name": f"holiday-{k}.jpg"} for k, img in enumerate(gt["images"][:3])]
    _jsonl_by_file_name(gt, jsonl, other)
    with pytest.raises(ConfigError, match=r"none of its 3 frames \('holiday-0.jpg'.* by file name"):
        evaluate_coco(jsonl, val80)
    results = [{**r, "image_id": r["image_id"] + 10**9} for r in gt_as_results(gt)[:5]]
    with pytest.raises(ConfigError, match="none of its image ids .* is an image of the ground truth"):
        evaluate_coco(results, val80)
    # The command: a clear error and exit code 1, not a table of zeros.
    from streamseg.cli import main

    assert main(["eval", str(jsonl), str(val80)]) == 1
    captured = capsys.readouterr()
    assert "Average Precision" not in captured.out
    assert "streamseg: error:" in captured.err and "matches an image of the ground truth" in captured.err
