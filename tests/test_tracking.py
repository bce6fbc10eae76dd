"""Tracking: Kalman filter, ByteTrack association, keypoint smoothing, MOT files and MOT metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from streamseg.errors import ConfigError, SinkError
from streamseg.masks import paste_masks
from streamseg.postprocess import box_iou
from streamseg.sinks.mot import MotWriter, read_mot
from streamseg.tracking import (
    ByteTracker,
    OneEuroFilter,
    TrackerConfig,
    TrackState,
    kalman,
    linear_assignment,
    mask_iou,
)
from streamseg.tracking.synthetic import crossing_events, generate_tracks, noisy_detections
from streamseg.types import MASK_SIZE, NUM_KEYPOINTS, Instances

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGE = (480, 640)


def dets(boxes, scores=None, labels=None, *, masks=None, keypoints=None) -> Instances:
    """Instances of the given xyxy boxes on a 480x640 image (score 0.9, label 1 by default)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    return Instances(
        image_size=IMAGE,
        boxes=boxes,
        scores=np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32),
        labels=np.ones(n, np.int64) if labels is None else np.asarray(labels, np.int64),
        masks=masks,
        keypoints=keypoints,
    )


def box_at(x: float, y: float, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


def empty() -> Instances:
    return Instances.empty(IMAGE, with_masks=False)


# -- Kalman filter -------------------------------------------------------------------------


def test_kalman_box_conversion_round_trips() -> None:
    boxes = np.array([[10, 20, 50, 100], [0, 0, 1, 2]], np.float64)
    xyah = kalman.xyxy_to_xyah(boxes)
    np.testing.assert_allclose(xyah[0], [30, 60, 0.5, 80])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(xyah), boxes)


def test_kalman_initiate_predict_update_match_the_textbook_formulas() -> None:
    z = kalman.xyxy_to_xyah([[100, 100, 140, 180]])
    mean, cov = kalman.initiate(z)
    assert mean.shape == (1, 8) and cov.shape == (1, 8, 8)
    np.testing.assert_array_equal(mean[0, 4:], 0)
    np.testing.assert_allclose(np.sqrt(np.diag(cov[0]))[[0, 3, 4]], [2 * 80 / 20, 2 * 80 / 20, 10 * 80 / 160])

    # Two single steps equal one call with steps=2; the inputs are not modified.
    m_in, c_in = mean.copy(), cov.copy()
    m2, c2 = kalman.predict(mean, cov, steps=2)
    m1, c1 = kalman.predict(*kalman.predict(mean, cov), steps=1)
    np.testing.assert_allclose(m2, m1)
    np.testing.assert_allclose(c2, c1)
    np.testing.assert_array_equal(mean, m_in)
    np.testing.assert_array_equal(cov, c_in)

    # Update against the textbook Kalman gain with an explicit inverse.
    meas = z + np.array([[3.0, -2.0, 0.01, 4.0]])
    new_mean, new_cov = kalman.update(m2, c2, meas)
    h = np.eye(4, 8)
    s_mean, s_cov = kalman.project(m2, c2)
    gain = c2[0] @ h.T @ np.linalg.inv(s_cov[0])
    np.testing.assert_allclose(new_mean[0], m2[0] + gain @ (meas[0] - s_mean[0]))
    np.testing.assert_allclose(new_cov[0], c2[0] - gain @ s_cov[0] @ gain.T, atol=1e-9)
    np.testing.assert_allclose(new_cov[0], new_cov[0].T, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(new_cov[0]) > 0)
    assert np.trace(new_cov[0]) < np.trace(c2[0])


def test_kalman_learns_a_constant_velocity() -> None:
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah([box_at(0, 50)]))
    for k in range(1, 30):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, kalman.xyxy_to_xyah([box_at(4.0 * k, 50 + 2.0 * k)]))
    np.testing.assert_allclose(mean[0, 4:6], [4.0, 2.0], atol=0.1)


def test_kalman_predict_is_vectorised_over_tracks() -> None:
    z = kalman.xyxy_to_xyah([box_at(0, 0), box_at(100, 50, 60, 120)])
    mean, cov = kalman.initiate(z)
    mean[:, 4] = [1.0, -2.0]
    m, c = kalman.predict(mean, cov, steps=3)
    for i in range(2):
        mi, ci = kalman.predict(mean[i : i + 1], cov[i : i + 1], steps=3)
        np.testing.assert_allclose(m[i], mi[0])
        np.testing.assert_allclose(c[i], ci[0])
    np.testing.assert_allclose(m[:, 0] - mean[:, 0], [3.0, -6.0])


# -- assignment and mask IoU -----------------------------------------------------------------


def test_linear_assignment_leaves_pairs_at_or_above_the_limit_unmatched() -> None:
    cost = np.array([[0.1, 0.9], [0.85, 0.95], [0.5, 0.2]])
    rows, cols = linear_assignment(cost, 0.8)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (2, 1)]
    # Matching two cheap-enough pairs beats one very cheap pair (lapjv extend_cost semantics).
    rows, cols = linear_assignment(np.array([[0.3, 0.5], [0.5, 1.0]]), 0.8)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    rows, cols = linear_assignment(np.zeros((0, 3)), 0.8)
    assert rows.size == cols.size == 0


def test_mask_iou_equals_full_size_mask_iou() -> None:
    rng = np.random.default_rng(3)
    boxes_a = np.array([[10, 20, 90, 140], [200, 200, 260, 300], [600, 400, 700, 520]], np.float32)
    boxes_b = np.array([[30, 40, 100, 150], [0, 0, 20, 20], [210, 190, 250, 310]], np.float32)
    masks_a = rng.random((3, MASK_SIZE, MASK_SIZE), dtype=np.float32)
    masks_b = rng.random((3, MASK_SIZE, MASK_SIZE), dtype=np.float32)
    got = mask_iou(masks_a, boxes_a, masks_b, boxes_b, IMAGE)
    full_a = paste_masks(masks_a, boxes_a, IMAGE)
    full_b = paste_masks(masks_b, boxes_b, IMAGE)
    inter = np.einsum("ahw,bhw->ab", full_a.astype(np.int64), full_b.astype(np.int64))
    union = full_a.sum((1, 2))[:, None] + full_b.sum((1, 2))[None, :] - inter
    expected = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    np.testing.assert_allclose(got, expected)
    assert got[0, 0] > 0.1 and got[1, 2] > 0.1 and got[0, 1] == 0
    only = np.zeros((3, 3), bool)
    only[1, 2] = True  # the other pairs are neither compared nor (rows 0, 2) pasted
    restricted = mask_iou(masks_a, boxes_a, masks_b, boxes_b, IMAGE, candidates=only)
    np.testing.assert_allclose(restricted, np.where(only, expected, 0.0))


# -- ByteTracker: association --------------------------------------------------------------


def test_ids_stay_stable_for_an_object_moving_straight() -> None:
    tracker = ByteTracker()
    ids = [tracker.update(dets([box_at(20 + 6 * k, 100 + 2 * k)])).track_ids[0] for k in range(40)]
    assert ids == [1] * 40
    (info,) = tracker.tracks
    assert info.track_id == 1 and info.hits == 40 and info.age == 39 and info.time_since_update == 0
    assert info.state is TrackState.TRACKED


def test_two_crossing_objects_keep_their_ids() -> None:
    tracker = ByteTracker()
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    max_iou = 0.0
    for k in range(50):
        a, b = box_at(50 + 10 * k, 100, 60, 120), box_at(550 - 10 * k, 140, 60, 120)
        order = [a, b] if k % 2 else [b, a]  # the detector's order changes
        out = tracker.update(dets(order))
        ia, ib = (out.track_ids[1], out.track_ids[0]) if k % 2 == 0 else (out.track_ids[0], out.track_ids[1])
        seen["a"].add(int(ia))
        seen["b"].add(int(ib))
        ab = dets([a, b]).boxes
        max_iou = max(max_iou, float(box_iou(ab[:1], ab[1:])[0, 0]))
    assert max_iou >= 0.45  # the boxes really overlap mid-way
    assert len(seen["a"]) == len(seen["b"]) == 1 and seen["a"] != seen["b"]
    assert seen["a"] | seen["b"] == {1, 2}


def test_a_brief_miss_keeps_the_id() -> None:
    tracker = ByteTracker()
    ids = []
    for k in range(30):
        frame = empty() if 10 <= k < 13 else dets([box_at(20 + 5 * k, 100)])
        ids.extend(tracker.update(frame).track_ids.tolist())
    assert ids == [1] * 27


def test_a_track_lost_longer_than_max_lost_frames_gets_a_new_id() -> None:
    for gap, expected in ((5, 1), (6, 2)):
        tracker = ByteTracker(max_lost_frames=5)
        for _ in range(5):
            tracker.update(dets([box_at(100, 100)]))
        for _ in range(gap):
            tracker.update(empty())
        if gap == 5:
            assert tracker.tracks[0].state is TrackState.LOST and tracker.tracks[0].time_since_update == 5
        ids = [tracker.update(dets([box_at(100, 100)])).track_ids[0] for _ in range(2)]
        assert ids[-1] == expected, f"gap {gap}"
        if expected == 2:
            assert ids[0] == -1  # tentative first


def test_lost_frames_are_counted_in_video_frames_with_period() -> None:
    tracker = ByteTracker(max_lost_frames=10)
    tracker.update(dets([box_at(100, 100)]))
    tracker.update(empty(), period=4)
    tracker.update(empty(), period=4)
    assert tracker.tracks[0].time_since_update == 8
    tracker.update(empty(), period=4)  # 12 frames > 10
    assert tracker.tracks == ()


def test_each_tracker_has_its_own_id_counter() -> None:
    a, b = ByteTracker(), ByteTracker()
    out_a = a.update(dets([box_at(10, 10), box_at(200, 10), box_at(400, 10)]))
    out_b = b.update(dets([box_at(300, 300)]))
    assert out_a.track_ids.tolist() == [1, 2, 3]
    assert out_b.track_ids.tolist() == [1]
    a.reset()
    assert a.update(dets([box_at(50, 50)])).track_ids.tolist() == [1] and a.frame_count == 1


def test_new_tracks_are_tentative_until_confirmed() -> None:
    tracker = ByteTracker(min_hits=3)
    tracker.update(dets([box_at(10, 10)]))  # first frame: confirmed at once (as ByteTrack)
    rows = []
    for k in range(4):
        rows.append(tracker.update(dets([box_at(10, 10), box_at(300 + 3 * k, 200)])).track_ids.tolist())
    assert rows == [[1, -1], [1, -1], [1, 2], [1, 2]]
    # A tentative track that misses a frame is deleted.
    tracker = ByteTracker()
    tracker.update(empty())
    assert tracker.update(dets([box_at(10, 10)])).track_ids.tolist() == [-1]
    tracker.update(empty())
    assert tracker.update(dets([box_at(10, 10)])).track_ids.tolist() == [-1]
    assert tracker.update(dets([box_at(10, 10)])).track_ids.tolist() == [1]


def test_low_score_detections_continue_tracks_but_start_none() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(100, 100)], scores=[0.9]))
    out = tracker.update(dets([box_at(103, 100), box_at(400, 100)], scores=[0.3, 0.3]))
    assert out.track_ids.tolist() == [1, -1]
    out = tracker.update(dets([box_at(106, 100), box_at(400, 100)], scores=[0.05, 0.55]))
    assert out.track_ids.tolist() == [-1, -1]  # below low_thresh; 0.55 < new_track_thresh
    assert [t.track_id for t in tracker.tracks] == [1]


def test_input_is_untouched_and_output_keeps_order_and_fields() -> None:
    rng = np.random.default_rng(0)
    boxes = [box_at(10, 10), box_at(200, 50), box_at(400, 300)]
    masks = rng.random((3, MASK_SIZE, MASK_SIZE), dtype=np.float32)
    kps = rng.random((3, NUM_KEYPOINTS, 3), dtype=np.float32) * 100
    tracker = ByteTracker()
    first = dets(boxes, scores=[0.9, 0.8, 0.7], labels=[1, 3, 1], masks=masks, keypoints=kps)
    tracker.update(first)
    order = [2, 0, 1]
    inp = first[order]
    out = tracker.update(inp)
    assert out is not inp
    assert inp.track_ids.tolist() == [-1, -1, -1]
    assert out.track_ids.tolist() == [3, 1, 2]
    for name in ("boxes", "scores", "labels", "masks", "keypoints"):
        np.testing.assert_array_equal(getattr(out, name), getattr(inp, name), err_msg=name)
    assert out.image_size == inp.image_size


def test_classes_are_tracked_separately_unless_configured() -> None:
    for per_class, expected in ((True, -1), (False, 1)):
        tracker = ByteTracker(per_class=per_class)
        tracker.update(dets([box_at(100, 100)], labels=[1]))
        out = tracker.update(dets([box_at(101, 100)], labels=[3]))
        assert out.track_ids.tolist() == [expected], per_class
    tracker = ByteTracker()
    out = tracker.update(dets([box_at(100, 100), box_at(100, 100)], labels=[1, 3]))
    out = tracker.update(dets([box_at(102, 100), box_at(101, 100)], labels=[3, 1]))
    assert out.track_ids.tolist() == [2, 1]


def half_masks() -> tuple[np.ndarray, np.ndarray]:
    left = np.zeros((MASK_SIZE, MASK_SIZE), np.float32)
    left[:, : MASK_SIZE // 2] = 1.0
    return left, left[:, ::-1].copy()


def test_mask_iou_separates_overlapping_boxes_whose_masks_differ() -> None:
    left, right = half_masks()
    frame0 = dets([[100, 100, 200, 200], [104, 100, 204, 200]], masks=np.stack([left, right]))
    # Object A (left-half mask) moves right by 6, B (right-half mask) left by 4: by boxes
    # alone, A's track now best fits B's detection.
    frame1 = dets([[100, 100, 200, 200], [106, 100, 206, 200]], masks=np.stack([right, left]))
    results = {}
    for use_mask_iou in (False, True):
        tracker = ByteTracker(use_mask_iou=use_mask_iou)
        ids0 = tracker.update(frame0).track_ids.tolist()
        ids1 = tracker.update(frame1).track_ids.tolist()
        results[use_mask_iou] = (ids0, ids1)
    assert results[True] == ([1, 2], [2, 1])  # follows the masks
    assert results[False] == ([1, 2], [1, 2])  # follows the boxes


def test_mask_iou_falls_back_to_boxes_without_masks() -> None:
    tracker = ByteTracker(use_mask_iou=True)
    ids = [tracker.update(dets([box_at(10 + 4 * k, 10)])).track_ids[0] for k in range(5)]
    assert ids == [1] * 5


# -- ByteTracker: frame skipping and prediction -----------------------------------------------


def test_period_predicts_over_skipped_frames() -> None:
    results = {}
    for period in (1, 5):
        tracker = ByteTracker()
        for k in range(10):
            tracker.update(dets([box_at(15 * k, 100)]))
        # The model skipped 4 frames: the object moved 5 x 15 = 75 px, more than its width.
        results[period] = tracker.update(dets([box_at(15 * 14, 100)]), period=period).track_ids[0]
    assert results == {5: 1, 1: -1}


def test_predict_moves_boxes_with_velocity_and_changes_nothing() -> None:
    tracker = ByteTracker()
    kps = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
    kps[0, :, 0], kps[0, :, 1], kps[0, :, 2] = 30.0, 40.0, 1.0
    masks = np.ones((1, MASK_SIZE, MASK_SIZE), np.float32)
    for k in range(20):
        kps_k = kps.copy()
        kps_k[0, :, 0] += 5 * k
        tracker.update(dets([box_at(20 + 5 * k, 50)], masks=masks, keypoints=kps_k))
    last = np.array(box_at(20 + 5 * 19, 50))
    p3 = tracker.predict(steps=3)
    assert p3.track_ids.tolist() == [1] and p3.labels.tolist() == [1]
    np.testing.assert_allclose(p3.boxes[0], last + [15, 0, 15, 0], atol=1.5)
    np.testing.assert_array_equal(p3.masks, masks)
    np.testing.assert_allclose(p3.keypoints[0, :, 0], 30 + 5 * 19 + 15, atol=1.5)
    np.testing.assert_allclose(p3.keypoints[0, :, 2], 1.0)
    np.testing.assert_allclose(tracker.predict(steps=0).boxes[0], last, atol=1.0)
    np.testing.assert_array_equal(tracker.predict(steps=3).boxes, p3.boxes)  # no state change
    assert tracker.update(dets([box_at(20 + 5 * 23, 50)]), period=4).track_ids.tolist() == [1]
    with pytest.raises(ValueError):
        tracker.predict(steps=-1)
    with pytest.raises(ValueError):
        tracker.update(empty(), period=0)


def test_predict_leaves_out_lost_and_tentative_tracks() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(10, 10), box_at(300, 300)]))
    tracker.update(dets([box_at(10, 10), box_at(500, 100)]))  # 2 lost, a tentative one born
    pred = tracker.predict()
    assert pred.track_ids.tolist() == [1] and pred.masks is None and pred.keypoints is None
    assert ByteTracker().predict().boxes.shape == (0, 4)


# -- ByteTracker: bad input ------------------------------------------------------------------


def test_empty_frames_age_the_tracks_and_return_empty_instances() -> None:
    tracker = ByteTracker()
    out = tracker.update(empty())
    assert len(out) == 0 and out.track_ids.shape == (0,)
    tracker.update(dets([box_at(50, 50)]))
    tracker.update(dets([box_at(53, 50)]))
    out = tracker.update(empty())
    assert len(out) == 0
    (info,) = tracker.tracks
    assert info.state is TrackState.LOST and info.time_since_update == 1
    assert len(tracker.predict()) == 0


def test_zero_area_boxes_are_never_matched_and_start_no_track() -> None:
    tracker = ByteTracker()
    degenerate = [[100, 100, 100, 180], [50, 60, 90, 60], [200, 200, 150, 250]]
    for _ in range(3):
        out = tracker.update(dets(degenerate, scores=[0.99, 0.99, 0.99]))
        assert out.track_ids.tolist() == [-1, -1, -1]
    assert tracker.tracks == ()
    tracker = ByteTracker()
    tracker.update(dets([box_at(100, 100)]))
    out = tracker.update(dets([[100, 100, 100, 180], box_at(400, 100)]))
    assert out.track_ids.tolist() == [-1, -1]
    assert tracker.tracks[0].state is TrackState.LOST


def test_nan_scores_and_boxes_are_ignored() -> None:
    tracker = ByteTracker()
    boxes = [box_at(10, 10), box_at(100, 100), [np.nan, 0, 50, 50], box_at(300, 300)]
    scores = [np.nan, 0.9, 0.9, np.inf]
    for _ in range(3):
        out = tracker.update(dets(boxes, scores=scores))
        assert out.track_ids.tolist() == [-1, 1, -1, -1]
    assert [t.track_id for t in tracker.tracks] == [1]
    assert np.isnan(out.scores[0])  # fields kept as given


def test_tracker_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="high_thresh"):
        ByteTracker(high_thresh=1.5)
    with pytest.raises(ConfigError, match="min_hits"):
        ByteTracker(min_hits=0)
    with pytest.raises(ConfigError, match="low_thresh"):
        TrackerConfig(low_thresh=0.7, high_thresh=0.5)
    with pytest.raises(ConfigError, match="unknown tracker setting"):
        ByteTracker(max_age=3)
    cfg = TrackerConfig(max_lost_frames=5)
    assert ByteTracker(cfg, min_hits=3).config == TrackerConfig(max_lost_frames=5, min_hits=3)


# -- keypoint smoothing ----------------------------------------------------------------------


def test_one_euro_filter_basics() -> None:
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    x0 = np.array([[1.0, 2.0], [np.nan, 5.0]])
    out = f(x0, 0.0)
    np.testing.assert_array_equal(out, x0)  # first sample passes
    out = f(np.array([[1.0, 2.0], [7.0, 5.0]]), 1 / 30)
    np.testing.assert_allclose(out, [[1.0, 2.0], [7.0, 5.0]])  # constant stays; a NaN restarts
    # A step is followed with lag: alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c).
    out = f(np.array([[11.0, 2.0], [7.0, 5.0]]), 2 / 30)
    alpha = 1.0 / (1.0 + (1.0 / (2 * math.pi)) * 30)
    np.testing.assert_allclose(out[0, 0], 1.0 + alpha * 10.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff_hz=0.0)


def test_keypoint_smoothing_is_off_by_default_and_reduces_jitter_when_on() -> None:
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(60):
        kps = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
        kps[0, :, 0] = 120 + rng.normal(0, 2.0, NUM_KEYPOINTS)
        kps[0, :, 1] = 150 + rng.normal(0, 2.0, NUM_KEYPOINTS)
        kps[0, :, 2] = 5.0
        frames.append(dets([box_at(100, 100)], keypoints=kps))
    raw = [ByteTracker().update(f) for f in frames[:1]]
    np.testing.assert_array_equal(raw[0].keypoints, frames[0].keypoints)
    plain, smooth = ByteTracker(), ByteTracker(smooth_keypoints=True, fps=30.0)
    out_plain = np.stack([plain.update(f).keypoints[0] for f in frames])
    out_smooth = np.stack([smooth.update(f).keypoints[0] for f in frames])
    np.testing.assert_array_equal(out_plain, np.stack([f.keypoints[0] for f in frames]))
    assert out_smooth[20:, :, 0].std() < 0.5 * out_plain[20:, :, 0].std()
    np.testing.assert_array_equal(out_smooth[:, :, 2], out_plain[:, :, 2])  # scores untouched
    assert frames[5].keypoints[0, 0, 0] == out_plain[5, 0, 0]  # input untouched


# -- MOT files ------------------------------------------------------------------------------


def test_mot_writer_writes_tracked_instances_one_based_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    inst = dets([[10, 20, 50, 100], [0, 0, 5, 5]], scores=[0.87654, 0.5]).replace(track_ids=np.array([7, -1]))
    with MotWriter(path) as writer:
        writer.write(0, inst)
        assert path.read_text() == "1,7,10.00,20.00,40.00,80.00,0.8765,-1,-1,-1\n"  # flushed
        writer.write(4, inst)
        writer.write(5, empty())
    assert writer.closed and writer.frames_written == 3 and writer.rows_written == 2
    rows = read_mot(path)
    np.testing.assert_allclose(rows[:, :7], [[1, 7, 10, 20, 40, 80, 0.8765], [5, 7, 10, 20, 40, 80, 0.8765]])
    with pytest.raises(SinkError, match="closed"):
        writer.write(6, inst)


def test_mot_writer_and_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="cannot write MOT results"):
        MotWriter(tmp_path / "missing-dir" / "out.txt")
    with pytest.raises(ConfigError, match="not found"):
        read_mot(tmp_path / "none.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10,10,5,5,1,-1,-1,-1\n2,1,10,x,5,5,1,-1,-1,-1\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: not a number"):
        read_mot(bad)
    bad.write_text("1,1,10,10\n")
    with pytest.raises(ConfigError, match=r"bad.txt:1: expected at least 6"):
        read_mot(bad)
    bad.write_text("0,1,10,10,5,5,1\n")
    with pytest.raises(ConfigError, match="1-based"):
        read_mot(bad)
    (tmp_path / "empty.txt").write_text("")
    assert read_mot(tmp_path / "empty.txt").shape == (0, 10)


# -- MOT metrics ----------------------------------------------------------------------------


def write_rows(path: Path, rows: list[list[float]]) -> Path:
    path.write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))
    return path


def test_evaluate_mot_matches_hand_computed_figures(tmp_path: Path) -> None:
    """Two objects, 10 frames: misses, an ID switch and false positives, every figure by hand.

    GT: A (id 1) and B (id 2), 10 frames each (20 boxes). Predictions: A exactly as id 11
    in all 10 frames; B missed in frames 1-3, then exactly as id 12 (frames 4-6) and id
    13 (frames 7-10); a box far from everything (id 19) in frames 4-5 (19 boxes in all).
    Every match has IoU 1 and the stray box IoU 0, so HOTA is the same at every alpha.

    - CLEAR: TP 17, FN 3, FP 2, IDSW 1 (B: 12 -> 13); MOTA = 1 - (3 + 2 + 1) / 20 = 0.7;
      MT 1 (A; B is covered 7 / 10), ML 0.
    - Identity: A <-> 11 (10 boxes), B <-> 13 (4 boxes): IDTP 14; IDP = 14 / 19,
      IDR = 14 / 20, IDF1 = 2 * 14 / (19 + 20) = 28 / 39.
    - HOTA: DetA = TP / (TP + FN + FP) = 17 / 22; AssA = mean over the 17 TPs of
      TPA / (TPA + FNA + FPA): 10 TPs of (A, 11) at 10 / 10, 3 of (B, 12) at 3 / 10 and 4
      of (B, 13) at 4 / 10, so 12.5 / 17; HOTA = sqrt(DetA AssA) = sqrt(12.5 / 22).
    """
    from streamseg.eval.mot import evaluate_mot

    a, b, stray = [10, 10, 40, 80], [300, 10, 40, 80], [150, 300, 40, 80]
    gt, pred = [], []
    for f in range(1, 11):
        gt += [[f, 1, *a, 1], [f, 2, *b, 1]]
        pred.append([f, 11, *a, 0.9])
        if f >= 4:
            pred.append([f, 12 if f <= 6 else 13, *b, 0.9])
        if f in (4, 5):
            pred.append([f, 19, *stray, 0.9])
    (m,) = evaluate_mot(write_rows(tmp_path / "p.txt", pred), write_rows(tmp_path / "g.txt", gt)).values()
    assert (m.tp, m.fn, m.fp, m.id_switches) == (17, 3, 2, 1)
    assert (m.num_gt_dets, m.num_pred_dets, m.num_gt_ids, m.num_pred_ids, m.num_frames) == (20, 19, 2, 4, 10)
    assert (m.mostly_tracked, m.mostly_lost) == (1, 0)
    assert m.mota == pytest.approx(0.7)
    assert m.motp == pytest.approx(1.0)
    assert (m.idp, m.idr, m.idf1) == pytest.approx((14 / 19, 14 / 20, 28 / 39))
    assert m.deta == pytest.approx(17 / 22)
    assert m.assa == pytest.approx(12.5 / 17)
    assert m.hota == pytest.approx(math.sqrt(12.5 / 22))

    # One box predicted 9 px to the side: IoU 31 / 49 = 0.633. A match for CLEAR and Identity
    # (IoU >= 0.5) with MOTP = that IoU; for HOTA a TP at the 12 thresholds 0.05..0.60 (DetA
    # = AssA = 1) and an FN plus an FP at the other 7 (DetA 0): mean over the 19 = 12 / 19.
    gt1 = write_rows(tmp_path / "g1.txt", [[1, 1, *a, 1]])
    (m,) = evaluate_mot(write_rows(tmp_path / "p1.txt", [[1, 5, a[0] + 9, *a[1:], 0.9]]), gt1).values()
    assert (m.tp, m.fn, m.fp, m.mota, m.idf1) == (1, 0, 0, 1.0, 1.0)
    assert m.motp == pytest.approx(31 / 49)
    assert (m.deta, m.assa, m.hota) == pytest.approx((12 / 19, 12 / 19, 12 / 19))


def test_evaluate_mot_counts_an_id_swap(tmp_path: Path) -> None:
    from streamseg.eval.mot import evaluate_mot

    gt, pred = [], []
    for f in range(1, 11):
        gt += [[f, 1, 10, 10, 40, 80, 1], [f, 2, 300, 10, 40, 80, 1]]
        a, b = (1, 2) if f <= 5 else (2, 1)  # the tracker swaps the IDs after frame 5
        pred += [[f, a, 10, 10, 40, 80, 0.9], [f, b, 300, 10, 40, 80, 0.9]]
    (m,) = evaluate_mot(write_rows(tmp_path / "p.txt", pred), write_rows(tmp_path / "g.txt", gt)).values()
    assert m.id_switches == 2 and m.fp == 0 and m.fn == 0
    assert m.mota == pytest.approx(1 - 2 / 20)
    assert m.idf1 == pytest.approx(0.5)
    assert 0.0 < m.hota < 1.0


def test_evaluate_mot_errors(tmp_path: Path) -> None:
    from streamseg.eval.mot import evaluate_mot

    gt = write_rows(tmp_path / "gt.txt", [[1, 1, 10, 10, 40, 80, 1]])
    with pytest.raises(ConfigError, match="must be a file too"):
        evaluate_mot(tmp_path / "nope.txt", gt)
    with pytest.raises(ConfigError, match="ground truth not found"):
        evaluate_mot(gt, tmp_path / "nope")
    neg = write_rows(tmp_path / "neg.txt", [[1, -1, 10, 10, 40, 80, 1]])
    with pytest.raises(ConfigError, match="whole numbers >= 0"):
        evaluate_mot(neg, gt)
    dup = write_rows(tmp_path / "dup.txt", [[1, 3, 10, 10, 40, 80, 1], [1, 3, 60, 10, 40, 80, 1]])
    with pytest.raises(ConfigError, match="MOT evaluation of"):
        evaluate_mot(dup, gt)
    (tmp_path / "seqs" / "A" / "gt").mkdir(parents=True)
    write_rows(tmp_path / "seqs" / "A" / "gt" / "gt.txt", [[1, 1, 10, 10, 40, 80, 1]])
    (tmp_path / "preds").mkdir()
    with pytest.raises(ConfigError, match="missing in .* for: A.txt"):
        evaluate_mot(tmp_path / "preds", tmp_path / "seqs")


def test_evaluate_mot_applies_the_mot17_rule_as_hand_computed(tmp_path: Path) -> None:
    """Nine-column MOT17 ground truth, 4 frames, one predicted box on each GT object.

    GT (class, consider flag): id 1 pedestrian (1, 1) and id 2 pedestrian (1, 1) count;
    id 3 pedestrian not to consider (1, 0), id 4 car (3, 0), id 5 static person (7, 1),
    id 6 distractor (8, 0) and id 7 reflection (12, 0) do not. Predictions: id 11 exactly
    on 1; none on 2; ids 13, 14 and 15 exactly on 3, 4 and 5; id 16 on 6 shifted by 8 px
    (IoU 32 / 48 = 0.67); id 17 on 7 shifted by 20 px (IoU 20 / 60 = 0.33).

    MOT17 rule (the module docstring, TrackEval's MotChallenge2DBox): predictions matched
    at IoU >= 0.5 to a distractor class (2, 7, 8, 12) are removed: 15 and 16, not 17 (IoU
    below 0.5); the GT is ids 1 and 2 only (8 boxes). So TP 4 (11), FN 4 (id 2), FP 12 (13,
    14 and 17): MOTA = 1 - (4 + 12) / 8 = -1; IDF1 = 2 * 4 / (8 + 16) = 1/3; DetA =
    4 / (4 + 4 + 12) = 0.2, AssA = 1, HOTA = sqrt(0.2). Every row counting instead: 28 GT
    boxes, TP 20 (11, 13, 14, 15, 16), FN 8 (ids 2 and 7), FP 4 (17): MOTA = 1 - 12 / 28.
    """
    from streamseg.eval.mot import evaluate_mot

    objects = {  # GT id: (class, consider flag, predicted id or None, x shift of the prediction)
        1: (1, 1, 11, 0), 2: (1, 1, None, 0), 3: (1, 0, 13, 0), 4: (3, 0, 14, 0),
        5: (7, 1, 15, 0), 6: (8, 0, 16, 8), 7: (12, 0, 17, 20),
    }  # fmt: skip
    gt, pred = [], []
    for f in range(1, 5):
        for gt_id, (cls, flag, pred_id, dx) in objects.items():
            x = 100.0 * gt_id
            gt.append([f, gt_id, x, 50, 40, 80, flag, cls, 1.0])
            if pred_id is not None:
                pred.append([f, pred_id, x + dx, 50, 40, 80, 0.9])
    pred_path, gt_path = write_rows(tmp_path / "p.txt", pred), write_rows(tmp_path / "g.txt", gt)
    for gt_filter in ("auto", "mot17"):  # auto: nine columns, flags 0/1, classes 1..13 -> mot17
        (m,) = evaluate_mot(pred_path, gt_path, gt_filter=gt_filter).values()
        assert (m.tp, m.fn, m.fp, m.id_switches) == (4, 4, 12, 0), gt_filter
        assert (m.num_gt_dets, m.num_gt_ids, m.num_pred_dets) == (8, 2, 16), gt_filter
        assert m.mota == pytest.approx(-1.0)
        assert m.idf1 == pytest.approx(1 / 3)
        assert (m.deta, m.assa, m.hota) == pytest.approx((0.2, 1.0, math.sqrt(0.2)))
    (m,) = evaluate_mot(pred_path, gt_path, gt_filter="all").values()
    assert (m.tp, m.fn, m.fp, m.num_gt_dets) == (20, 8, 4, 28)
    assert m.mota == pytest.approx(1 - 12 / 28)


def mot17_sequences() -> list[Path]:
    root = DATA / "mot17-mini"
    if not root.is_dir():
        pytest.skip(f"test data not found: {root} (the real data lives in ../shared/data beside the repo)")
    return sorted(p for p in root.iterdir() if (p / "gt" / "gt.txt").is_file())


def _track_public_detections(seq: Path, path: Path) -> None:
    """Run a ByteTracker (default settings) over the sequence's public detections; write MOT rows."""
    num_frames = len(list((seq / "img1").glob("*.jpg")))
    det = read_mot(seq / "det" / "det.txt")  # frame, -1, x, y, w, h, conf (all 1050 frames)
    tracker = ByteTracker()
    with MotWriter(path) as writer:
        for frame in range(1, num_frames + 1):
            rows = det[det[:, 0] == frame]
            boxes = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]]
            labels = np.ones(len(rows), np.int64)
            inst = Instances((1080, 1920), boxes=boxes, scores=rows[:, 6], labels=labels)
            writer.write(frame - 1, tracker.update(inst))


#: Floors of ByteTracker on the mot17-mini public detections (MOT17 rule), 1-2 points below
#: the figures measured on 2026-12-01 (commits 1c48e46 and 75d996f: the same) with
#: `.venv/bin/python -m pytest tests/test_tracking.py -k public_detections -s` (the table it prints):
#:   MOT17-02-FRCNN  HOTA 56.7  MOTA 36.4  IDF1 53.3  IDSW 0  FP 0  FN 56   (88 GT boxes, 4 frames)
#:   MOT17-04-FRCNN  HOTA 67.2  MOTA 53.0  IDF1 69.3  IDSW 0  FP 0  FN 158  (336 GT boxes, 8 frames)
#:   COMBINED        HOTA 65.2  MOTA 49.5  IDF1 66.2  IDSW 0  FP 0  FN 214  (424 GT boxes)
#: The detections alone bound recall (TP 222 of 424 with a new ID on every box: MOTA 7.5, IDF1
#: 10.8, HOTA 25.8), so the floors are about association, which the last check shows.
MOT17_PUBLIC_FLOORS = {  # sequence: (HOTA, MOTA, IDF1)
    "MOT17-02-FRCNN": (0.55, 0.35, 0.52),
    "MOT17-04-FRCNN": (0.66, 0.51, 0.68),
    "COMBINED": (0.64, 0.48, 0.65),
}


def test_track_mot17_mini_public_detections(tmp_path: Path) -> None:
    """ByteTracker on MOT17's public Faster R-CNN detections, scored against MOT17's own ground truth."""
    from streamseg.eval.mot import COMBINED, evaluate_mot, format_table

    seqs = mot17_sequences()
    tracked, untracked = tmp_path / "tracked", tmp_path / "untracked"
    tracked.mkdir()
    untracked.mkdir()
    for seq in seqs:
        _track_public_detections(seq, tracked / f"{seq.name}.txt")
        # The control: the same detections, a new ID on every box (no association at all).
        num_frames = len(list((seq / "img1").glob("*.jpg")))
        det = read_mot(seq / "det" / "det.txt")
        det = det[det[:, 0] <= num_frames]
        det[:, 1] = np.arange(1, len(det) + 1)
        np.savetxt(untracked / f"{seq.name}.txt", det, delimiter=",", fmt="%g")
    results = evaluate_mot(tracked, seqs[0].parent)
    print("\n" + format_table(results))
    assert list(results) == [s.name for s in seqs] + [COMBINED]
    for seq in seqs:  # the MOT17 rule counts pedestrians (class 1) marked to consider (flag 1)
        gt = read_mot(seq / "gt" / "gt.txt")
        assert results[seq.name].num_gt_dets == int(((gt[:, 6] == 1) & (gt[:, 7] == 1)).sum())
    for name, (hota, mota, idf1) in MOT17_PUBLIC_FLOORS.items():
        m = results[name]
        got = f"{name}: HOTA {m.hota:.3f} MOTA {m.mota:.3f} IDF1 {m.idf1:.3f}"
        assert m.hota >= hota and m.mota >= mota and m.idf1 >= idf1, f"{got}; floors {hota}, {mota}, {idf1}"
    assert results[COMBINED].id_switches <= 1
    control = evaluate_mot(untracked, seqs[0].parent)[COMBINED]
    floor_hota, floor_mota, floor_idf1 = MOT17_PUBLIC_FLOORS[COMBINED]
    assert control.hota < floor_hota - 0.3 and control.mota < floor_mota - 0.3
    assert control.idf1 < floor_idf1 - 0.3


# -- acceptance: noisy synthetic ground truth with crossings ----------------------------------------


def test_synthetic_tracks_cross_and_detections_are_noisy() -> None:
    gt = generate_tracks(seed=0)
    assert gt.num_objects == 8 and gt.num_frames == 150 and len(gt.ids) == 8 * 150
    assert crossing_events(gt) >= 5
    assert (gt.boxes[:, :2] >= -1e-3).all() and (gt.boxes[:, 2] <= 640 + 1e-3).all()
    frames = noisy_detections(gt, seed=0)
    kept = sum(len(f) for f in frames) / len(gt.ids)
    assert 0.80 < kept < 0.92  # 10% dropped plus occlusion gaps
    assert all((f.track_ids == -1).all() for f in frames)


def test_acceptance_noisy_synthetic_tracks(tmp_path: Path) -> None:
    """Issue 4, small form: IDF1 >= 0.90 and <= 1 ID switch per 100 GT track-frames.

    Four sequences of 8 objects x 150 frames in 640x480 with bouncing, crossing
    motion; detections with 5% box jitter, 10% dropped, one occlusion gap of up to 10
    frames per object, 10% low scores. Scored over the four sequences together.
    """
    from streamseg.eval.mot import COMBINED, evaluate_mot, format_table

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    pred_dir.mkdir()
    for seed in range(4):
        gt = generate_tracks(num_objects=8, num_frames=150, image_size=IMAGE, seed=seed)
        (gt_dir / f"synth-{seed}" / "gt").mkdir(parents=True)
        gt.write_mot(gt_dir / f"synth-{seed}" / "gt" / "gt.txt")
        tracker = ByteTracker()
        with MotWriter(pred_dir / f"synth-{seed}.txt") as writer:
            for t, inst in enumerate(noisy_detections(gt, jitter=0.05, drop_rate=0.1, max_gap=10, seed=seed)):
                writer.write(t, tracker.update(inst))
    results = evaluate_mot(pred_dir, gt_dir)
    print("\n" + format_table(results))
    total = results[COMBINED]
    assert total.num_gt_dets == 4 * 8 * 150
    assert total.idf1 >= 0.90
    assert total.id_switches <= total.num_gt_dets / 100


# -- offline gap filling (ByteTrack's linear interpolation) -------------------------------------


def test_interpolate_tracks_fills_short_gaps_linearly_and_leaves_long_ones() -> None:
    from streamseg.tracking import interpolate_tracks

    rows = np.array(
        [
            # frame, id, x, y, w, h, conf
            [1, 7, 0.0, 0.0, 10.0, 20.0, 0.9],
            [4, 7, 30.0, 3.0, 16.0, 20.0, 0.8],  # 2 missing frames: filled
            [20, 7, 30.0, 3.0, 16.0, 20.0, 0.8],  # 15 missing frames: left empty
            [2, 3, 5.0, 5.0, 5.0, 5.0, 0.5],
            [5, -1, 1.0, 1.0, 1.0, 1.0, 0.5],  # untracked rows are never touched
            [9, -1, 1.0, 1.0, 1.0, 1.0, 0.5],
        ]
    )
    out = interpolate_tracks(rows, max_gap=10)
    assert out.shape == (8, 7)
    assert (np.diff(out[:, 0]) >= 0).all()  # sorted by frame
    added = out[(out[:, 1] == 7) & np.isin(out[:, 0], [2, 3])]
    np.testing.assert_allclose(added[:, 2:6], [[10.0, 1.0, 12.0, 20.0], [20.0, 2.0, 14.0, 20.0]])
    np.testing.assert_allclose(added[:, 6], 0.9)  # the earlier row's confidence
    assert not ((out[:, 1] == 7) & (out[:, 0] > 4) & (out[:, 0] < 20)).any()
    assert (out[:, 1] == -1).sum() == 2
    np.testing.assert_array_equal(interpolate_tracks(rows, 0), rows[np.lexsort((rows[:, 1], rows[:, 0]))])
    with pytest.raises(ValueError, match="max_gap"):
        interpolate_tracks(rows, -1)
    with pytest.raises(ValueError, match="C >= 6"):
        interpolate_tracks(rows[:, :4], 5)


def test_mot_writer_fills_gaps_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "tracks.txt"
    with MotWriter(path, interpolate_max_gap=5) as writer:
        for t in range(6):
            inst = dets([box_at(10.0 * t, 0.0)], [0.9]) if t in (0, 4, 5) else empty()
            writer.write(t, Instances(**{**inst.__dict__, "track_ids": np.full(len(inst), 4, np.int64)}))
        assert len(read_mot(path)) == 3  # flushed online rows while running
    rows = read_mot(path)
    assert writer.rows_interpolated == 3
    np.testing.assert_array_equal(rows[:, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(rows[:, 2], [0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    assert not (tmp_path / "tracks.txt.tmp").exists()


def _demo_world_tracks(seed: int, num_frames: int):
    """Ground truth of a held-out demo-world clip as SyntheticTracks (no video is encoded)."""
    from streamseg.datasets.demo_world import DEMO_SIZE, clip_frames
    from streamseg.tracking.synthetic import SyntheticTracks

    frames, ids, boxes, labels = [], [], [], []
    for frame in clip_frames(seed=seed, num_frames=num_frames):
        for obj in frame.objects:
            x, y, w, h = obj.bbox
            frames.append(frame.index)
            ids.append(obj.track_id)
            boxes.append([x, y, x + w, y + h])
            labels.append(obj.category_id)
    return SyntheticTracks(
        image_size=DEMO_SIZE,
        num_frames=num_frames,
        frames=np.array(frames, np.int64),
        ids=np.array(ids, np.int64),
        boxes=np.array(boxes, np.float32),
        labels=np.array(labels, np.int64),
    )


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_acceptance_noisy_demo_world_ground_truth(tmp_path: Path) -> None:
    """Issue 4 on the demo world: IDF1 >= 0.90 and <= 1 ID switch per 100 GT track-frames.

    Four held-out clips (seeds 2026-2029, 150 frames, persons, balls, boxes and cars
    that enter, leave, cross and occlude each other); their exact ground truth made
    noisy: 5% box jitter, 10% of detections dropped, one occlusion gap of up to 10
    frames per object. The online tracks are bounded by the input's recall (about
    0.83, so IDF1 <= 2R / (1 + R) ~ 0.91 even with perfect identities); ByteTrack's
    offline gap filling (``--mot-interpolate 20``) recovers the dropped frames.
    """
    from streamseg.eval.mot import COMBINED, evaluate_mot, format_table

    gt_dir, online_dir, filled_dir = tmp_path / "gt", tmp_path / "online", tmp_path / "filled"
    online_dir.mkdir()
    filled_dir.mkdir()
    for seed in (2026, 2027, 2028, 2029):
        gt = _demo_world_tracks(seed, 150)
        (gt_dir / f"demo-{seed}" / "gt").mkdir(parents=True)
        gt.write_mot(gt_dir / f"demo-{seed}" / "gt" / "gt.txt")
        tracker = ByteTracker()
        detections = noisy_detections(gt, jitter=0.05, drop_rate=0.1, max_gap=10, seed=seed)
        with (
            MotWriter(online_dir / f"demo-{seed}.txt") as online,
            MotWriter(filled_dir / f"demo-{seed}.txt", interpolate_max_gap=20) as filled,
        ):
            for t, inst in enumerate(detections):
                tracked = tracker.update(inst)
                online.write(t, tracked)
                filled.write(t, tracked)
    online = evaluate_mot(online_dir, gt_dir, gt_filter="all")
    filled = evaluate_mot(filled_dir, gt_dir, gt_filter="all")
    print("\nonline:\n" + format_table(online) + "\ninterpolated:\n" + format_table(filled))
    total = filled[COMBINED]
    assert total.num_gt_dets > 2000
    assert online[COMBINED].idp >= 0.95  # identities are right where the tracker reports a box
    assert total.idf1 >= 0.90
    assert total.id_switches <= total.num_gt_dets / 100
    assert total.idf1 > online[COMBINED].idf1
