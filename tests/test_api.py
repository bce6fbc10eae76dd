"""The Python API (issue 18, item 1): streamseg.Predictor on one image and on a stream, and the README's example."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import streamseg
from streamseg.config import ModelConfig, StreamSettings
from streamseg.core import Pipeline, StreamProcessor
from streamseg.datasets.demo_export import write_clip
from streamseg.errors import ConfigError, SourceError
from streamseg.sources import open_source
from streamseg.types import FrameResult

REPO = Path(__file__).resolve().parents[1]
CLIP_FRAMES = 40  # more than the source queue (8) + result queue (4) + the generator's queue (4) hold


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"), num_frames=CLIP_FRAMES)["video"]


@pytest.fixture(scope="module")
def predictor() -> streamseg.Predictor:
    return streamseg.Predictor(model="demo", device="cpu")


@pytest.fixture(scope="module")
def first_frame(clip: Path) -> np.ndarray:
    import av

    with av.open(str(clip)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _streamseg_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("streamseg-") and t.is_alive()]


def _readme_python_blocks() -> list[str]:
    section = (REPO / "README.md").read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path) -> None:
    """Every python block of the README's "Python API" section, in order, in a fresh interpreter."""
    pytest.importorskip("supervision")
    blocks = _readme_python_blocks()
    assert len(blocks) == 2, "the section has the Predictor example and the supervision example"
    script = tmp_path / "readme_example.py"
    script.write_text("\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(re.fullmatch(r"\s*person \d\.\d\d xyxy \[.*\]", line) for line in lines), proc.stdout
    assert [line.split()[0] for line in lines if re.fullmatch(r"\d+ \d+\.\d\d s \[.*\]", line)] == [
        str(i) for i in range(10)
    ], proc.stdout  # frames 0..9, then the break
    annotated = cv2.imread(str(tmp_path / "streamseg-api" / "annotated.png"))
    assert annotated is not None and annotated.shape == (240, 320, 3)


def test_import_streamseg_loads_no_torch_and_predictor_loads_lazily() -> None:
    code = (
        "import sys, streamseg\n"
        "heavy = [m for m in ('torch', 'av', 'cv2', 'streamseg.predictor') if m in sys.modules]\n"
        "print(heavy, streamseg.Predictor.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] streamseg.predictor", out.stdout + out.stderr


def test_call_returns_the_backends_instances_at_the_threshold(predictor, first_frame) -> None:
    raw, _ = predictor.backend.infer(first_frame)
    assert (raw.scores < 0.5).any(), "the frame has detections under the threshold, so filtering is tested"
    instances = predictor(first_frame)
    assert predictor.score_thresh == 0.5  # the demo model's registry default
    keep = raw.scores >= np.float32(0.5)
    np.testing.assert_array_equal(instances.boxes, raw.boxes[keep])
    np.testing.assert_array_equal(instances.scores, raw.scores[keep])
    np.testing.assert_array_equal(instances.labels, raw.labels[keep])
    assert instances.masks.shape == (int(keep.sum()), 28, 28)
    assert instances.keypoints.shape == (int(keep.sum()), 17, 3)
    assert (instances.track_ids == -1).all()
    assert "person" in [predictor.categories[label] for label in instances.labels]


def test_call_on_a_path_reads_the_image_as_rgb(predictor, first_frame, tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(first_frame, cv2.COLOR_RGB2BGR))  # PNG: lossless
    from_path, from_array = predictor(path), predictor(first_frame)
    np.testing.assert_array_equal(from_path.boxes, from_array.boxes)
    np.testing.assert_array_equal(from_path.labels, from_array.labels)
    with pytest.raises(SourceError, match="cannot read image"):
        predictor(tmp_path / "missing.png")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda im: im.astype(np.float32) / 255, ValueError, r"dtype float32 \(a float image in \[0, 1\]: \(image \* 255\)"),
        (lambda im: im[:, :, 0], ValueError, "got a grey one of shape"),
        (lambda im: np.dstack([im, im[:, :, :1]]), ValueError, r"got RGBA .*: pass image\[:, :, :3\]"),
        (lambda im: im[:, :, :2], ValueError, r"got shape \(240, 320, 2\)"),
        (lambda im: im.tolist(), TypeError, "got list"),
    ],
)
def test_call_on_a_wrong_image_says_how_to_fix_it(predictor, first_frame, make, error, match) -> None:
    with pytest.raises(error, match=match):
        predictor(make(first_frame))


def test_bad_configuration_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        streamseg.Predictor(model="nope")
    with pytest.raises(ConfigError, match=r"Predictor\.score_thresh: Input should be less than or equal to 1"):
        streamseg.Predictor(model="demo", score_thresh=2.0)
    with pytest.raises(ConfigError, match="unknown key 'min_sise'"):
        streamseg.Predictor(model="demo", min_sise=200)


def test_stream_gives_what_the_core_gives(predictor, clip: Path) -> None:
    """Every frame in order, tracked, the same instances as a Pipeline over the same settings."""
    frames = 16
    results = list(predictor.stream(clip, max_frames=frames))
    assert [r.frame.index for r in results] == list(range(frames))

    collected: list[FrameResult] = []

    class Collect:
        needs_image, stage = False, "collect"

        def write(self, result: FrameResult, image: np.ndarray | None) -> None:
            collected.append(result)

        def close(self) -> None:
            pass

    config = ModelConfig(name="demo", device="cpu")
    source = open_source(str(clip), max_frames=frames)
    source.open()
    processor = StreamProcessor.from_settings(
        StreamSettings(), config, categories=predictor.categories, outputs=[Collect()]
    )
    Pipeline(source, predictor.backend, processor=processor).run()
    assert len(collected) == frames
    for ours, core in zip(results, collected):
        np.testing.assert_array_equal(ours.instances.boxes, core.instances.boxes)
        np.testing.assert_array_equal(ours.instances.track_ids, core.instances.track_ids)
        assert (ours.instances.scores >= 0.5).all()
    assert max(int(r.instances.track_ids.max(initial=-1)) for r in results) >= 1
    assert {"decode", "model", "track"} <= results[0].timings_ms.keys()


def test_stream_without_tracking_and_with_detect_every(predictor, clip: Path) -> None:
    untracked = list(predictor.stream(clip, track=False, max_frames=3))
    assert len(untracked) == 3 and all((r.instances.track_ids == -1).all() for r in untracked)
    every_other = list(predictor.stream(clip, detect_every=2, max_frames=4))
    assert ["model" in r.timings_ms for r in every_other] == [True, False, True, False]
    with pytest.raises(ConfigError, match="detect_every > 1 and trails need tracking"):
        predictor.stream(clip, track=False, detect_every=2)


def _wait_for_no_threads(timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while _streamseg_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _streamseg_threads()


def test_breaking_out_stops_the_source_and_joins_every_thread(predictor, clip: Path) -> None:
    assert _streamseg_threads() == []
    for result in predictor.stream(clip):
        if result.frame.index == 1:
            running = _streamseg_threads()
            break
    assert any(name.startswith("streamseg-source:") for name in running), running  # it was still decoding
    assert _streamseg_threads() == []  # joined when the loop ended, not later


def test_closing_the_generator_or_raising_in_the_loop_cleans_up(predictor, clip: Path) -> None:
    results = predictor.stream(clip)
    next(results)
    assert _streamseg_threads() != []
    results.close()
    assert _streamseg_threads() == []

    with pytest.raises(KeyError):
        for _ in predictor.stream(clip):
            raise KeyError("the caller's own error")
    assert _streamseg_threads() == []

    never_started = predictor.stream(clip)  # nothing opens before the first next()
    assert _streamseg_threads() == []
    never_started.close()


def test_stream_errors(predictor, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.mp4"):
        predictor.stream(tmp_path / "missing.mp4")  # at the call
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])  # +faststart: the header opens, the frames stop early
    got = []
    with pytest.raises(SourceError, match="truncated or corrupt"):
        for result in predictor.stream(cut):
            got.append(result.frame.index)
    assert 0 < len(got) < CLIP_FRAMES and got == list(range(len(got)))
    assert _wait_for_no_threads() == []


def test_stream_over_an_image_folder(predictor, first_frame, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(first_frame, cv2.COLOR_RGB2BGR))
    results = list(predictor.stream(folder))
    assert [r.frame.index for r in results] == [0, 1, 2]
    np.testing.assert_array_equal(results[0].instances.boxes, predictor(first_frame).boxes)
