"""streamseg.eval.mot against TrackEval itself, and without it (issue 13: a plain pip install).

`evaluate_mot` computes the metrics with motrics (TrackEval's MOT Challenge evaluation behind
TrackEval's API, needing only numpy), because every trackeval release requires the GUI
opencv-python. These tests run trackeval 1.3.0 itself (its `Evaluator` on its
`MotChallenge2DBox` dataset, the MOT Challenge's own entry point) on the same files, when it
is installed; `.ci/run` installs it, with --no-deps, into the throwaway venv of its plain-pip
step only, so the comparison runs in CI while no real install ever gets it. Identical means:
every count and every ratio of counts the same float, the three figures that sum IoUs (HOTA,
AssA, MOTP; motrics adds them in another order) within 1e-12, and the printed table the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamseg.errors import ConfigError
from streamseg.eval.mot import COMBINED, MotMetrics, evaluate_mot, format_table
from streamseg.sinks.mot import MotWriter, read_mot
from streamseg.tracking import ByteTracker
from streamseg.types import Instances

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Fields that are counts or ratios of counts: the same float in both.
EXACT = {"mota", "idf1", "idp", "idr", "deta"}
#: Fields that sum IoUs (HOTA's AssA and LocA per threshold, CLEAR's MOTP): within this.
REL_TOL = 1e-12


def import_trackeval():
    """trackeval itself (silencing the note it prints when tabulate is missing), or skip."""
    if importlib.util.find_spec("trackeval") is None:
        pytest.skip("trackeval is not installed (the reference: .ci/run's plain-pip step installs it)")
    with contextlib.redirect_stdout(io.StringIO()):
        import trackeval
    return trackeval


def trackeval_reference(gt_folder: Path, trackers_folder: Path, seq_lengths: dict[str, int]) -> dict:
    """trackeval's own results: {tracker: {sequence or COMBINED: MotMetrics}}.

    ``gt_folder/<seq>/gt/gt.txt`` and ``trackers_folder/<tracker>/<seq>.txt`` are read by
    trackeval itself, as the MOT17 benchmark does (``MotChallenge2DBox`` with its
    preprocessing); every tracker folder holds every sequence.
    """
    trackeval = import_trackeval()
    from streamseg.eval import mot

    eval_config = {
        **trackeval.Evaluator.get_default_eval_config(),
        "USE_PARALLEL": False, "BREAK_ON_ERROR": True, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
        "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True, "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
    }  # fmt: skip
    dataset_config = {
        **trackeval.datasets.MotChallenge2DBox.get_default_dataset_config(),
        "GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(trackers_folder),
        "OUTPUT_FOLDER": str(trackers_folder.parent / "trackeval-out"), "TRACKER_SUB_FOLDER": "",
        "SKIP_SPLIT_FOL": True, "BENCHMARK": "MOT17", "DO_PREPROC": True, "PRINT_CONFIG": False,
        "SEQ_INFO": dict(seq_lengths), "TRACKERS_TO_EVAL": sorted(p.name for p in trackers_folder.iterdir()),
    }  # fmt: skip
    metrics = [
        trackeval.metrics.HOTA(),
        trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
        trackeval.metrics.Identity({"PRINT_CONFIG": False}),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        results, messages = trackeval.Evaluator(eval_config).evaluate(
            [trackeval.datasets.MotChallenge2DBox(dataset_config)], metrics
        )
    out = {}
    for tracker, per_seq in results["MotChallenge2DBox"].items():
        assert messages["MotChallenge2DBox"][tracker] == "Success", messages
        out[tracker] = {}
        for seq in [*sorted(set(per_seq) - {"COMBINED_SEQ"}), "COMBINED_SEQ"]:  # as evaluate_mot orders them
            r = per_seq[seq]["pedestrian"]
            name = COMBINED if seq == "COMBINED_SEQ" else seq
            count = {**r["Count"], "Frames": r["CLEAR"]["CLR_Frames"]}
            out[tracker][name] = mot._metrics(name, r["HOTA"], r["CLEAR"], r["Identity"], count)
        if len(seq_lengths) < 2:  # evaluate_mot reports COMBINED for two or more sequences only
            out[tracker].pop(COMBINED)
    return out


def assert_identical(ours: dict[str, MotMetrics], theirs: dict[str, MotMetrics], what: str) -> None:
    assert list(ours) == list(theirs), what
    for name, m in ours.items():
        a, b = dataclasses.asdict(m), dataclasses.asdict(theirs[name])
        for field, value in a.items():
            ref = b[field]
            where = f"{what} {name} {field}: streamseg {value!r}, trackeval {ref!r}"
            if isinstance(ref, float) and field not in EXACT:
                assert math.isclose(value, ref, rel_tol=REL_TOL, abs_tol=1e-15), where
            else:
                assert type(value) is type(ref) and value == ref, where
    assert format_table(ours) == format_table(theirs), what


def track(frames: list[np.ndarray], image_size: tuple[int, int], path: Path) -> Path:
    """ByteTracker (defaults) over per-frame detections (K, 5) x, y, w, h, score; MOT rows to path."""
    tracker = ByteTracker()
    path.parent.mkdir(parents=True, exist_ok=True)
    with MotWriter(path) as writer:
        for index, d in enumerate(frames):
            boxes = np.c_[d[:, :2], d[:, :2] + d[:, 2:4]]
            inst = Instances(image_size, boxes=boxes, scores=d[:, 4], labels=np.ones(len(d), np.int64))
            writer.write(index, tracker.update(inst))
    return path


def swap_ids_after(rows: np.ndarray, frame: int) -> np.ndarray:
    """The same rows, every track taking the next track's ID after ``frame`` (ID switches)."""
    out = rows.copy()
    ids = np.unique(rows[:, 1])
    late = rows[:, 0] > frame
    out[late, 1] = np.roll(ids, -1)[np.searchsorted(ids, rows[late, 1])]
    return out


def save(path: Path, rows: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, delimiter=",", fmt="%.6f")
    return path


# -- MOT17 (mot17-mini: real MOT17 ground truth with distractor classes 2, 7, 8) -------------------


def test_mot17_mini_identical_to_trackeval(tmp_path: Path) -> None:
    """Three trackers on both sequences, under the MOT17 rule, read by trackeval from the real files.

    - tracked: ByteTracker on MOT17's public Faster R-CNN detections;
    - swapped: the same tracks with every ID moved on half-way (ID switches, AssA, IDF1);
    - jittered: every GT box of every class (distractors too: their matches are removed)
      moved by ~4 px, a tenth dropped, one track ID per GT ID.
    """
    root = DATA / "mot17-mini"
    if not root.is_dir():
        pytest.skip(f"test data not found: {root} (the real data lives in ../shared/data beside the repo)")
    seqs = sorted(p for p in root.iterdir() if (p / "gt" / "gt.txt").is_file())
    trackers = tmp_path / "trackers"
    rng = np.random.default_rng(13)
    lengths = {}
    for seq in seqs:
        num_frames = len(list((seq / "img1").glob("*.jpg")))
        lengths[seq.name] = num_frames
        det = read_mot(seq / "det" / "det.txt")
        det = det[det[:, 0] <= num_frames]
        frames = [det[det[:, 0] == f][:, [2, 3, 4, 5, 6]] for f in range(1, num_frames + 1)]
        tracked = track(frames, (1080, 1920), trackers / "tracked" / f"{seq.name}.txt")
        save(trackers / "swapped" / f"{seq.name}.txt", swap_ids_after(read_mot(tracked), num_frames // 2))
        gt = read_mot(seq / "gt" / "gt.txt")
        jittered = np.c_[gt[:, :6], np.ones(len(gt)), -np.ones((len(gt), 3))]
        jittered[:, 2:6] += rng.normal(0.0, 4.0, (len(gt), 4))
        save(trackers / "jittered" / f"{seq.name}.txt", jittered[rng.random(len(gt)) > 0.1])
    ours = {name: evaluate_mot(trackers / name, root) for name in ("tracked", "swapped", "jittered")}
    for name, results in ours.items():  # auto: the MOT17 rule
        print(f"\n{name}:\n{format_table(results)}")
        assert results[COMBINED].num_gt_dets == 88 + 336  # pedestrians to consider (class 1, flag 1)
    assert ours["swapped"][COMBINED].id_switches > ours["tracked"][COMBINED].id_switches
    assert ours["jittered"][COMBINED].fp > 0  # the comparison sees false positives too
    reference = trackeval_reference(root, trackers, lengths)  # skips here without trackeval
    assert list(reference) == sorted(ours)
    for name, theirs in reference.items():
        assert_identical(ours[name], theirs, f"mot17-mini {name}")


# -- a demo-world clip (every row of the renderer's ground truth counts) ---------------------------


def test_demo_world_clip_identical_to_trackeval(tmp_path: Path) -> None:
    """A held-out demo-world clip, its exact ground truth, three trackers (as sequences of one folder).

    Detections: the GT boxes moved by ~3 px, 15% dropped, a third of them scored below 0.5
    (ByteTrack's second association), plus stray boxes; tracked by ByteTracker. Then the same
    tracks with the IDs moved on after frame 20, and with every box moved aside by 40% of its
    width (IoU about 0.43: CLEAR and Identity misses, HOTA TPs at the low thresholds only).
    """
    from streamseg.datasets.demo_export import write_clip
    from streamseg.datasets.demo_world import DEMO_SIZE

    clip = write_clip(tmp_path / "clip", num_frames=48)
    gt = read_mot(clip["mot"])
    num_frames = int(gt[:, 0].max())
    rng = np.random.default_rng(2026)
    frames = []
    for f in range(1, num_frames + 1):
        d = gt[gt[:, 0] == f][:, 2:6] + rng.normal(0.0, 3.0, (int((gt[:, 0] == f).sum()), 4))
        d = d[rng.random(len(d)) > 0.15]
        stray = np.c_[rng.uniform(0, 280, (2, 2)), rng.uniform(10, 40, (2, 2))][: rng.integers(0, 3)]
        boxes = np.concatenate([d, stray])
        scores = np.where(rng.random(len(boxes)) < 1 / 3, rng.uniform(0.15, 0.5, len(boxes)), 0.9)
        frames.append(np.c_[boxes, scores])
    preds, gts = tmp_path / "pred", tmp_path / "gt"
    tracked = read_mot(track(frames, DEMO_SIZE, preds / "tracked.txt"))
    save(preds / "swapped.txt", swap_ids_after(tracked, 20))
    shifted = tracked.copy()
    shifted[:, 2] += 0.4 * shifted[:, 4]
    save(preds / "shifted.txt", shifted)
    # trackeval reads every row when each is a pedestrian (class 1) to consider (flag 1):
    # what gt_filter="all" means; the demo's own classes are 1..3.
    every_row = np.c_[gt[:, :6], np.ones((len(gt), 3))]
    trackers = tmp_path / "trackers"
    for name in ("tracked", "swapped", "shifted"):
        save(gts / name / "gt" / "gt.txt", every_row)
        save(trackers / "pred" / f"{name}.txt", read_mot(preds / f"{name}.txt"))
    # evaluate_mot's length of a sequence: its last frame in either file.
    lengths = {p.stem: max(num_frames, int(read_mot(p)[:, 0].max())) for p in sorted(preds.iterdir())}
    ours = evaluate_mot(preds, gts, gt_filter="all")
    print("\n" + format_table(ours))
    # One file against the clip's own gt.txt, as `streamseg demo` scores it.
    (single,) = evaluate_mot(preds / "tracked.txt", clip["mot"], gt_filter="all").values()
    assert dataclasses.replace(single, sequence="tracked") == ours["tracked"]
    assert ours["tracked"].hota > ours["swapped"].hota and ours["tracked"].mota > ours["shifted"].mota
    (theirs,) = trackeval_reference(gts, trackers, lengths).values()  # skips here without trackeval
    assert_identical(ours, theirs, "demo-world clip")


# -- without trackeval -------------------------------------------------------------------------------


def test_evaluate_mot_never_imports_trackeval(tmp_path: Path) -> None:
    """A plain pip install has no trackeval: evaluate_mot and format_table work without it."""
    gt_rows = [[f, 1, 10 + f, 10, 40, 80, 1, 1, 1] for f in range(1, 6)]
    gt = save(tmp_path / "gt.txt", np.array(gt_rows, float))
    pred_rows = [[f, 7, 12 + f, 10, 40, 80, 0.9] for f in range(1, 5)]
    pred = save(tmp_path / "pred.txt", np.array(pred_rows, float))
    code = (
        "import sys; sys.modules['trackeval'] = None\n"  # `import trackeval` now raises ImportError
        "from streamseg.eval.mot import evaluate_mot, format_table\n"
        f"print(format_table(evaluate_mot({str(pred)!r}, {str(gt)!r})))\n"
        "assert 'trackeval' not in {m.split('.')[0] for m, mod in sys.modules.items() if mod}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:6] == ["Sequence", "HOTA", "DetA", "AssA", "MOTA", "IDF1"]
    assert "pred" in proc.stdout and "80.0" in proc.stdout  # MOTA: 4 TP of 5, no FP, no IDSW


def test_repeated_id_in_a_frame_is_an_error(tmp_path: Path) -> None:
    """TrackEval's rule (an ID names one object per frame) holds, though motrics does not check it."""
    gt = save(tmp_path / "gt.txt", np.array([[1, 1, 10, 10, 40, 80, 1], [2, 1, 10, 10, 40, 80, 1]], float))
    dup = save(tmp_path / "dup.txt", np.array([[1, 3, 10, 10, 40, 80, 1], [2, 3, 9, 9, 40, 80, 1],
                                               [2, 3, 60, 10, 40, 80, 1]], float))  # fmt: skip
    with pytest.raises(ConfigError, match=r"MOT evaluation of .*dup.txt: track ID 3 appears more than once "
                                          r"in frame 2 \(again in row 3\)"):  # fmt: skip
        evaluate_mot(dup, gt)
    gt2 = save(tmp_path / "gt2.txt", np.array([[1, 1, 10, 10, 40, 80, 1], [1, 1, 90, 10, 40, 80, 1]], float))
    with pytest.raises(ConfigError, match=r"gt2.txt: ground-truth ID 1 appears more than once in frame 1"):
        evaluate_mot(gt, gt2)
