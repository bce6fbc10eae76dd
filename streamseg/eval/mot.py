"""MOT metrics (HOTA, MOTA, IDF1, ID switches, FP, FN) of MOT Challenge text files.

The metrics are TrackEval's (Luiten et al., "HOTA: A Higher Order Metric for
Evaluating Multi-Object Tracking", IJCV 2021; the MOT Challenge's official
evaluation code), computed by ``motrics`` (PyPI), which implements TrackEval's MOT
Challenge evaluation behind TrackEval's own API (``motrics.compat.trackeval``): the
dataset class ``MotChallenge2DBox`` reads the files, computes the box IoUs and does
the benchmark's preprocessing; the metric classes ``HOTA``, ``CLEAR`` (Bernardin and
Stiefelhagen 2008: MOTA, MOTP, ID switches, FP, FN, MT, ML, fragmentations),
``Identity`` (Ristani et al. 2016: IDF1) and ``Count`` compute the metrics. This
module only finds the files, checks them, and lays them out as TrackEval expects; it
computes no metric. A detection matches a ground-truth box at IoU >= 0.5 (CLEAR,
Identity); HOTA averages over the thresholds 0.05, 0.10, ..., 0.95.

Why not ``trackeval`` itself: every release of it requires the GUI ``opencv-python``,
which pip installs beside our ``opencv-python-headless`` into the same ``cv2/``
folder (the GUI build, linked to Qt5 and libGL, then wins), so a dependency on it
breaks a plain ``pip install``; motrics needs only numpy. tests/test_eval_mot.py runs
trackeval 1.3.0 itself on the same files (MOT17 and the demo world) where it is
installed: every count (TP, FP, FN, IDSW, MT, ML, Frag, IDTP...) and every ratio of
counts (MOTA, IDF1, IDP, IDR, DetA) is the same float; HOTA, AssA and MOTP, which sum
IoUs, agree to within 1e-12 (motrics adds them in another order), and every figure
:func:`format_table` prints is the same.

Inputs:

* a pair of files: ``evaluate_mot("pred.txt", "gt.txt")``; the sequence is named
  after the prediction file;
* folders in MOT Challenge layout: ``evaluate_mot(pred_dir, gt_dir)`` with
  ``gt_dir/<seq>/gt/gt.txt`` for every sequence and ``pred_dir/<seq>.txt`` (a GT
  folder that is itself one sequence, ``gt_dir/gt/gt.txt``, works too).

Ground-truth filtering (``gt_filter``):

* ``"mot17"``: as the MOT17 benchmark (TrackEval's ``MotChallenge2DBox`` with
  preprocessing): only rows of class 1 (pedestrian) with consider flag 1 count;
  predictions matched (IoU >= 0.5, Hungarian) to a ground-truth box of a distractor
  class (2 person on vehicle, 7 static person, 8 distractor, 12 reflection) are
  removed before scoring. Needs the 9-column MOT17 ground truth.
* ``"all"``: every row of the ground truth counts (our own files, for example those
  written by :class:`~streamseg.sinks.mot.MotWriter` or
  :mod:`streamseg.tracking.synthetic`).
* ``"auto"`` (default): ``"mot17"`` when every row has at least 8 columns, a consider
  flag of 0 or 1 and a MOT17 class in 1..13; ``"all"`` otherwise.

A sequence's length is the last frame number found in either file: frames after
the last ground-truth frame can only add false positives. ``seqinfo.ini`` is not
read (cut sequences such as ``mot17-mini`` keep their full ``seqLength``).

Besides :func:`~streamseg.sinks.mot.read_mot`'s checks, IDs must be whole numbers
>= 0 and unique within a frame of a file (TrackEval's own rule; motrics does not check
it).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from streamseg.errors import ConfigError
from streamseg.sinks.mot import read_mot

__all__ = ["MotMetrics", "evaluate_mot", "format_table", "COMBINED", "GtFilter"]

#: Key of the metrics over all sequences together (only when there are two or more).
COMBINED = "COMBINED"

GtFilter = Literal["auto", "mot17", "all"]

#: MOT17 ground-truth class ids (TrackEval ``MotChallenge2DBox.class_name_to_class_id``).
_MOT17_CLASSES = range(1, 14)


@dataclasses.dataclass(frozen=True)
class MotMetrics:
    """MOT metrics of one sequence (or of all sequences combined).

    Ratios are fractions (1.0 = perfect), not percentages. Counts are of boxes
    (one object in one frame) unless named IDs.

    Attributes:
        sequence: sequence name (``COMBINED`` for all sequences together).
        hota: HOTA, the mean over the 19 localisation thresholds 0.05..0.95.
        deta: detection accuracy DetA (same averaging).
        assa: association accuracy AssA (same averaging).
        mota: MOTA = 1 - (FN + FP + IDSW) / GT boxes (can be negative).
        motp: MOTP, mean IoU of matched boxes.
        idf1: IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).
        idp: ID precision.
        idr: ID recall.
        id_switches: IDSW (CLEAR).
        fp: false positives (CLEAR).
        fn: false negatives, missed GT boxes (CLEAR).
        tp: true positives (CLEAR).
        mostly_tracked: GT tracks covered for >= 80% of their frames (MT).
        mostly_lost: GT tracks covered for < 20% of their frames (ML).
        fragmentations: times a GT track's coverage is interrupted (Frag).
        num_frames: frames of the sequence.
        num_gt_dets: GT boxes that count (after filtering).
        num_pred_dets: predicted boxes scored (after the distractor removal).
        num_gt_ids: GT tracks.
        num_pred_ids: predicted tracks.
    """

    sequence: str
    hota: float
    deta: float
    assa: float
    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    id_switches: int
    fp: int
    fn: int
    tp: int
    mostly_tracked: int
    mostly_lost: int
    fragmentations: int
    num_frames: int
    num_gt_dets: int
    num_pred_dets: int
    num_gt_ids: int
    num_pred_ids: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def _import_trackeval() -> ModuleType:
    """TrackEval's API as motrics implements it (``motrics.compat.trackeval``), imported when needed."""
    try:
        import motrics.compat.trackeval as trackeval
    except ImportError as e:  # a dependency of streamseg: only a broken install lacks it
        raise ConfigError(
            f"MOT evaluation needs the motrics package ({e}); reinstall streamseg, "
            f"or: pip install 'motrics>=0.3,<0.4'"
        ) from e
    return trackeval


def _find_pairs(pred: Path, gt: Path) -> list[tuple[str, Path, Path]]:
    """(sequence name, prediction file, ground-truth file) for each sequence to score."""
    if gt.is_file():
        if not pred.is_file():
            what = "is a folder" if pred.is_dir() else "does not exist"
            raise ConfigError(
                f"ground truth {gt} is a file, so the prediction must be a file too, but {pred} {what}"
            )
        return [(pred.stem, pred, gt)]
    if not gt.is_dir():
        raise ConfigError(f"ground truth not found: {gt}")
    if (gt / "gt" / "gt.txt").is_file():
        sequences = {gt.name: gt / "gt" / "gt.txt"}
    else:
        sequences = {
            d.name: d / "gt" / "gt.txt" for d in sorted(gt.iterdir()) if (d / "gt" / "gt.txt").is_file()
        }
    if not sequences:
        raise ConfigError(
            f"no ground truth in {gt}: expected {gt}/<sequence>/gt/gt.txt (MOT Challenge layout)"
        )
    if pred.is_file():
        if len(sequences) != 1:
            raise ConfigError(
                f"{pred} is one file but {gt} holds {len(sequences)} sequences; "
                f"give a folder with one <sequence>.txt per sequence"
            )
        ((name, gt_file),) = sequences.items()
        return [(name, pred, gt_file)]
    if not pred.is_dir():
        raise ConfigError(f"tracking results not found: {pred}")
    missing = [name for name in sequences if not (pred / f"{name}.txt").is_file()]
    if missing:
        raise ConfigError(f"tracking results missing in {pred} for: {', '.join(f'{m}.txt' for m in missing)}")
    return [(name, pred / f"{name}.txt", gt_file) for name, gt_file in sequences.items()]


def _is_mot17(gt: np.ndarray) -> bool:
    """Whether ground-truth rows look like MOT17's (consider flag 0/1, class 1..13)."""
    if gt.shape[0] == 0 or gt.shape[1] < 8:
        return False
    flags, classes = gt[:, 6], gt[:, 7]
    return bool(np.isin(flags, (0, 1)).all() and np.isin(classes, _MOT17_CLASSES).all())


def _check_ids(rows: np.ndarray, path: Path, what: str) -> None:
    ids = rows[:, 1]
    bad = ~(np.isfinite(ids) & (ids >= 0) & (ids == np.round(ids)))
    if bad.any():
        row = int(np.argmax(bad)) + 1
        hint = " (untracked detections such as det.txt have ID -1)" if what == "track" else ""
        raise ConfigError(
            f"{path}: {what} IDs must be whole numbers >= 0; row {row} has {ids[bad][0]:g}{hint}"
        )
    boxes = rows[:, 2:6]
    if not np.isfinite(boxes).all():
        raise ConfigError(
            f"{path}: a box has a non-finite value (row {int(np.argmax(~np.isfinite(boxes).all(1))) + 1})"
        )


def _repeated_id(rows: np.ndarray) -> str | None:
    """Where an ID appears twice in one frame (TrackEval's rule, which motrics does not check), or None."""
    pairs = rows[:, :2]  # (frame, id)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    if not (counts > 1).any():
        return None
    frame, dup = unique[np.argmax(counts > 1)]
    again = int(np.flatnonzero((pairs == (frame, dup)).all(1))[1]) + 1
    return f"ID {dup:g} appears more than once in frame {frame:g} (again in row {again})"


def _write_rows(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        for row in rows:
            f.write(
                ",".join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in row) + "\n"
            )


def _load_sequence(pred_path: Path, gt_path: Path, gt_filter: GtFilter) -> tuple[np.ndarray, np.ndarray, int]:
    """Read and normalise one pair: (gt rows (R, 9), pred rows (P, 10), number of frames)."""
    gt = read_mot(gt_path, min_columns=6)
    pred = read_mot(pred_path, min_columns=6)
    _check_ids(gt, gt_path, "ground-truth")
    _check_ids(pred, pred_path, "track")
    mode = gt_filter
    if mode == "auto":
        mode = "mot17" if _is_mot17(gt) else "all"
    if mode == "mot17":
        if gt.shape[0] and gt.shape[1] < 8:
            raise ConfigError(f"{gt_path}: MOT17 ground truth needs 9 columns (flag, class, visibility)")
        if gt.shape[0] and not np.isin(gt[:, 7], _MOT17_CLASSES).all():
            raise ConfigError(f"{gt_path}: MOT17 ground-truth classes must be in 1..13")
        vis = gt[:, 8:9] if gt.shape[1] >= 9 else np.ones((gt.shape[0], 1))
        gt_out = np.concatenate([gt[:, :8], vis], axis=1)
    elif mode == "all":
        gt_out = np.concatenate([gt[:, :6], np.ones((gt.shape[0], 3))], axis=1)
    else:
        raise ConfigError(f"gt_filter must be 'auto', 'mot17' or 'all', got {gt_filter!r}")
    conf = pred[:, 6:7] if pred.shape[1] >= 7 else np.ones((pred.shape[0], 1))
    pred_out = np.concatenate([pred[:, :6], conf, -np.ones((pred.shape[0], 3))], axis=1)
    num_frames = int(max(gt[:, 0].max(initial=1), pred[:, 0].max(initial=1)))
    return gt_out, pred_out, num_frames


def _metrics(name: str, hota: dict, clear: dict, identity: dict, count: dict) -> MotMetrics:
    return MotMetrics(
        sequence=name,
        hota=float(np.mean(hota["HOTA"])),
        deta=float(np.mean(hota["DetA"])),
        assa=float(np.mean(hota["AssA"])),
        mota=float(clear["MOTA"]),
        motp=float(clear["MOTP"]),
        idf1=float(identity["IDF1"]),
        idp=float(identity["IDP"]),
        idr=float(identity["IDR"]),
        id_switches=int(clear["IDSW"]),
        fp=int(clear["CLR_FP"]),
        fn=int(clear["CLR_FN"]),
        tp=int(clear["CLR_TP"]),
        mostly_tracked=int(clear["MT"]),
        mostly_lost=int(clear["ML"]),
        fragmentations=int(clear["Frag"]),
        num_frames=int(count.get("Frames", clear["CLR_Frames"])),
        num_gt_dets=int(count["GT_Dets"]),
        num_pred_dets=int(count["Dets"]),
        num_gt_ids=int(count["GT_IDs"]),
        num_pred_ids=int(count["IDs"]),
    )


def evaluate_mot(pred: str | Path, gt: str | Path, *, gt_filter: GtFilter = "auto") -> dict[str, MotMetrics]:
    """Score tracking results against ground truth with TrackEval's metrics (computed by motrics).

    Args:
        pred: a MOT results file, or a folder of ``<sequence>.txt`` files.
        gt: a MOT ground-truth file, a sequence folder (``<seq>/gt/gt.txt``) or a
            folder of sequence folders (MOT Challenge layout).
        gt_filter: ``"auto"``, ``"mot17"`` or ``"all"`` (see the module docstring).

    Returns:
        Metrics per sequence name, sorted by name, followed by ``COMBINED`` (TrackEval's
        ``combine_sequences``: counts summed, ratios recomputed) when there are two
        or more sequences.

    Raises:
        ConfigError: a file or folder is missing, a line is malformed, an ID is
            negative or repeated within a frame, or motrics is not installed.
    """
    pairs = _find_pairs(Path(pred), Path(gt))
    loaded = [(name, *_load_sequence(p, g, gt_filter)) for name, p, g in pairs]
    for (_, pred_path, gt_path), (_, gt_rows, pred_rows, _) in zip(pairs, loaded, strict=True):
        for rows, path, what in ((gt_rows, gt_path, "ground-truth"), (pred_rows, pred_path, "track")):
            if (where := _repeated_id(rows)) is not None:
                raise ConfigError(f"MOT evaluation of {pred} against {gt} failed: {path}: {what} {where}")
    trackeval = _import_trackeval()
    metrics = {
        "HOTA": trackeval.metrics.HOTA(),
        "CLEAR": trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
        "Identity": trackeval.metrics.Identity({"PRINT_CONFIG": False}),
        "Count": trackeval.metrics.Count(),
    }
    per_seq: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="streamseg-mot-") as tmp:
        root = Path(tmp)
        keys = {}
        for k, (name, gt_rows, pred_rows, _) in enumerate(loaded):
            key = f"seq{k:04d}"  # safe folder names; mapped back to the real names below
            keys[key] = name
            _write_rows(root / "gt" / key / "gt" / "gt.txt", gt_rows)
            _write_rows(root / "trackers" / "pred" / f"{key}.txt", pred_rows)
        config = {
            "GT_FOLDER": str(root / "gt"),
            "TRACKERS_FOLDER": str(root / "trackers"),
            "OUTPUT_FOLDER": str(root / "out"),
            "TRACKERS_TO_EVAL": ["pred"],
            "TRACKER_SUB_FOLDER": "",
            "SKIP_SPLIT_FOL": True,
            "BENCHMARK": "MOT17",
            "DO_PREPROC": True,
            "PRINT_CONFIG": False,
            "SEQ_INFO": {key: loaded[k][3] for k, key in enumerate(keys)},
        }
        try:
            dataset = trackeval.datasets.MotChallenge2DBox(config)
            for key, name in keys.items():
                raw = dataset.get_raw_seq_data("pred", key)
                data = dataset.get_preprocessed_seq_data(raw, "pedestrian")
                per_seq[name] = {m: metric.eval_sequence(data) for m, metric in metrics.items()}
        except trackeval.TrackEvalException as e:
            raise ConfigError(
                f"MOT evaluation of {pred} against {gt} failed: {_real_names(str(e), keys)}"
            ) from e
    results = {
        name: _metrics(name, **{k.lower(): v for k, v in per_seq[name].items()}) for name in sorted(per_seq)
    }
    if len(per_seq) >= 2:
        combined = {
            m: metric.combine_sequences({n: r[m] for n, r in per_seq.items()})
            for m, metric in metrics.items()
        }
        combined["Count"]["Frames"] = sum(r["Count"]["Frames"] for r in per_seq.values())
        results[COMBINED] = _metrics(COMBINED, **{k.lower(): v for k, v in combined.items()})
    return results


def _real_names(message: str, keys: dict[str, str]) -> str:
    for key, name in keys.items():
        message = message.replace(key, name)
    return message


def format_table(results: dict[str, MotMetrics]) -> str:
    """A fixed-width text table of :func:`evaluate_mot`'s results, one line per sequence.

    HOTA, MOTA, IDF1, DetA and AssA are printed in percent with one decimal, as the
    MOT Challenge leaderboards do; counts as integers.

    Args:
        results: as returned by :func:`evaluate_mot`.

    Returns:
        The table, lines joined by newlines, no trailing newline.
    """
    header = [
        "Sequence",
        "HOTA",
        "DetA",
        "AssA",
        "MOTA",
        "IDF1",
        "IDSW",
        "FP",
        "FN",
        "GT",
        "GT IDs",
        "IDs",
        "Frames",
    ]
    rows = []
    for m in results.values():
        rows.append(
            [
                m.sequence,
                *(_pct(v) for v in (m.hota, m.deta, m.assa, m.mota, m.idf1)),
                *(str(v) for v in (m.id_switches, m.fp, m.fn, m.num_gt_dets, m.num_gt_ids, m.num_pred_ids)),
                str(m.num_frames),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = [f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    return "\n".join("  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in [header, *rows])


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}" if math.isfinite(value) else "nan"
