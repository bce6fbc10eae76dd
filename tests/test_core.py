"""The one core under every front-end: the threshold rule through ``streamseg run``, and monitor == run.

* A track whose score dips under ``--score-thresh`` for a few frames keeps its ID: the
  model's detections all reach the tracker (ByteTrack's second association follows the
  low-score box), and the threshold only filters what is written. The same detections
  cut at the threshold *before* the tracker (the old rule) lose the ID: the control run
  shows the test can fail.
* ``streamseg monitor`` with a file stream, detect-every-K, trails and MOT output writes
  the same JSONL as ``streamseg run`` with the same settings: one core, not two loops.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.cli import main
from streamseg.sinks import VideoWriter

PERSON = 1  # the demo model's "person" label
SIZE = (240, 320)  # (H, W)
FRAMES = 40
DIP = range(20, 28)  # frames whose detection scores 0.3, under --score-thresh 0.5


def _box(t: int) -> list[float]:
    """A 50 x 80 px person walking right at 4 px/frame, turning back when its score dips (frame 20)."""
    x = 20 + 4 * t if t < DIP.start else 20 + 4 * (DIP.start - 1) - 4 * (t - DIP.start + 1)
    return [float(x), 80.0, 50.0, 80.0]  # COCO xywh


def _recording(path: Path, *, cut_before_tracker: bool) -> Path:
    """A streamseg JSONL of the walk (one detection per frame); optionally without the low-score frames."""
    with open(path, "w") as f:
        for t in range(FRAMES):
            score = 0.3 if t in DIP else 0.9
            dets = [] if cut_before_tracker and score < 0.5 else [
                {"track_id": -1, "category_id": PERSON, "label": "person", "score": score, "bbox": _box(t)}
            ]
            f.write(json.dumps({"frame": t, "pts": t / 10, "source": "rec", "image_size": list(SIZE),
                                "instances": dets, "timings_ms": {}}) + "\n")
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("core") / "walk.mp4"
    writer = VideoWriter(path, width=SIZE[1], height=SIZE[0], fps=10)
    for t in range(FRAMES):
        writer.write(np.full((*SIZE, 3), 60 + t, np.uint8), t / 10)
    writer.close()
    return path


def _run_ids(video: Path, recording: Path, out: Path) -> list[list[int]]:
    jsonl = out / "r.jsonl"
    code = main(["run", str(video), "--model", "demo", "--backend", "replay", "--replay", str(recording),
                 "--score-thresh", "0.5", "--jsonl", str(jsonl), "--mot", str(out / "r.txt"), "--no-progress"])
    assert code == 0
    return [[i["track_id"] for i in json.loads(line)["instances"]] for line in jsonl.read_text().splitlines()]


def test_score_dip_under_score_thresh_keeps_the_track_id(video: Path, tmp_path: Path) -> None:
    ids = _run_ids(video, _recording(tmp_path / "rec.jsonl", cut_before_tracker=False), tmp_path)
    assert len(ids) == FRAMES
    assert all(ids[t] == [] for t in DIP)  # under --score-thresh: neither drawn nor written...
    before, after = {i for t in range(DIP.start) for i in ids[t]}, {i for t in range(DIP.stop, FRAMES) for i in ids[t]}
    assert before == {1} and after == {1}  # ...but tracked through the dip: the same ID after it
    mot_ids = {int(line.split(",")[1]) for line in (tmp_path / "r.txt").read_text().splitlines()}
    assert mot_ids == {1}


def test_cutting_before_the_tracker_loses_the_id(video: Path, tmp_path: Path) -> None:
    """The control: the same walk with the low-score detections removed before tracking (the old rule)."""
    ids = _run_ids(video, _recording(tmp_path / "rec.jsonl", cut_before_tracker=True), tmp_path)
    after = {i for t in range(DIP.stop, FRAMES) for i in ids[t]}
    assert after and 1 not in after


def test_monitor_file_stream_writes_what_run_writes(tmp_path: Path) -> None:
    """Same model, thresholds, detect-every-K, trails: the monitor's JSONL and MOT equal ``streamseg run``'s."""
    from streamseg.datasets.demo_export import write_clip
    from streamseg.monitor import Monitor, parse_config

    clip = write_clip(tmp_path / "clip", num_frames=12)["video"]
    model = {"name": "demo", "device": "cpu"}  # the bundled trained model: real scores, real tracks
    stream = {"detect_every": 3, "trails": True, "mot": True, "segment_s": 60.0}
    doc = {"monitor": {"output_dir": str(tmp_path / "mon"), "health_interval_s": 1.0},
           "model": model, "streams": [{"name": "clip", "url": str(clip), **stream}]}
    final = Monitor(parse_config(doc)).run()
    assert final[0].frames == 12 and final[0].state == "stopped", final[0].line()

    run_jsonl, run_mot = tmp_path / "run.jsonl", tmp_path / "run.txt"
    code = main(["run", str(clip), "--model", "demo", "--detect-every", "3", "--trails",
                 "--jsonl", str(run_jsonl), "--mot", str(run_mot), "--no-progress", "--device", "cpu"])
    assert code == 0

    def records(path: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "timings_ms"} | {"model": "model" in json.loads(line)["timings_ms"]}
                for line in path.read_text().splitlines()]

    mon = records(tmp_path / "mon" / "clip" / "clip.jsonl")
    assert [r["model"] for r in mon] == [t % 3 == 0 for t in range(12)]  # detect-every-3 in the monitor
    tracked = [i["track_id"] for r in mon if not r["model"] for i in r["instances"]]
    assert tracked and min(tracked) >= 1  # the frames the model skipped carry the tracker's predictions
    assert mon == records(run_jsonl)
    assert (tmp_path / "mon" / "clip" / "clip.txt").read_text() == run_mot.read_text()
    with av.open(str(next((tmp_path / "mon" / "clip").glob("clip-*.mp4")))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12


def test_monitor_takes_the_backend_from_its_model_table(video: Path, tmp_path: Path) -> None:
    """``[model] backend = "replay"`` in a monitor: the same walk, through the monitor, keeps its ID too."""
    from streamseg.monitor import Monitor, parse_config

    recording = _recording(tmp_path / "rec.jsonl", cut_before_tracker=False)
    doc = {"monitor": {"output_dir": str(tmp_path / "mon")},
           "model": {"name": "demo", "backend": "replay", "replay": str(recording)},
           "streams": [{"name": "walk", "url": str(video), "video": False}]}
    final = Monitor(parse_config(doc)).run()
    assert final[0].frames == FRAMES, final[0].line()
    lines = [json.loads(line) for line in (tmp_path / "mon" / "walk" / "walk.jsonl").read_text().splitlines()]
    assert [[i["track_id"] for i in r["instances"]] for r in lines] == [[] if t in DIP else [1] for t in range(FRAMES)]
