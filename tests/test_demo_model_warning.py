"""The demo model on a source that is not a demo-world clip warns once (issue 13, item 4).

Real processes on real videos: `streamseg run` on ../shared/data/videos (warns), on a clip
`write_clip` wrote (does not), `streamseg demo` on its own clip (does not), and the window's
Session (warns through logging).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from tests.conftest import data_path

WARNING = "is not a demo-world clip"


def run_demo_model(source: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamseg.cli", "run", source, "--model", "demo", "--device", "cpu",
         "--no-progress", "--max-frames", "2", "--jsonl", str(tmp_path / "o.jsonl"), *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_clips_of_the_demo_world_are_tagged_and_recognised(tmp_path: Path) -> None:
    from streamseg.datasets.demo_export import (
        DEMO_CLIP_COMMENT,
        demo_model_warning,
        is_demo_clip,
        write_clip,
        write_synthetic_clip,
    )

    clip = write_clip(tmp_path / "c", num_frames=6)["video"]
    synthetic = write_synthetic_clip(tmp_path / "s.mp4", num_frames=4)
    for path, n in ((clip, 6), (synthetic, 4)):
        with av.open(str(path)) as container:
            assert container.metadata["comment"].startswith(DEMO_CLIP_COMMENT)
            assert len(list(container.decode(video=0))) == n  # the tag costs no frame
        assert is_demo_clip(path) and is_demo_clip(f"file://{path}")
    copied = tmp_path / "renamed.mp4"  # the tag travels with the file
    shutil.copy(clip, copied)
    assert is_demo_clip(copied)
    real = data_path("videos", "juggle.mp4")
    for other in (real, tmp_path, tmp_path / "missing.mp4", "rtsp://user:pw@cam/s", "cam:0"):
        assert not is_demo_clip(other)
    assert demo_model_warning("demo", str(clip)) is None
    assert demo_model_warning("maskrcnn_resnet50_fpn", str(real)) is None
    message = demo_model_warning("demo", "rtsp://user:s3cret@cam/s")
    assert message and WARNING in message and "s3cret" not in message and "streamseg models" in message


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_run_warns_once_on_a_real_video_and_not_on_a_demo_clip(tmp_path: Path) -> None:
    from streamseg.datasets.demo_export import write_clip

    proc = run_demo_model(str(data_path("videos", "juggle.mp4")), tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if WARNING in x]
    assert len(lines) == 1 and lines[0].startswith("streamseg: WARNING:"), proc.stderr
    assert "juggle.mp4" in lines[0] and "--model maskrcnn_resnet50_fpn" in lines[0]

    clip = write_clip(tmp_path / "clip", num_frames=4)["video"]
    proc = run_demo_model(str(clip), tmp_path)
    assert proc.returncode == 0 and WARNING not in proc.stderr, proc.stderr

    proc = subprocess.run(
        [sys.executable, "-m", "streamseg.cli", "run", str(data_path("videos", "juggle.mp4")), "--weights",
         "random", "--min-size", "160", "--no-progress", "--max-frames", "1", "--jsonl", str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and WARNING not in proc.stderr, proc.stderr  # only the demo model warns


def test_demo_command_does_not_warn_on_its_own_clip(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg.cli", "demo", "--out-dir", str(tmp_path), "--frames", "8", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert WARNING not in proc.stderr


def test_window_session_logs_the_warning(caplog) -> None:  # noqa: ANN001 - pytest fixture
    from streamseg_app.session import BackendCache, Session, SessionCallbacks

    from streamseg.config import ModelConfig

    done = threading.Event()
    errors: list[str] = []
    session = Session(
        str(data_path("videos", "juggle.mp4")),
        model=ModelConfig(name="demo", device="cpu"),
        backends=BackendCache(),
        callbacks=SessionCallbacks(ready=lambda info: session.stop(), error=errors.append,
                                   finished=lambda state: done.set()),
        pace=False,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="streamseg"):
        session.start()
        assert done.wait(120) and session.join(60), "the session did not end"
    assert not errors, errors
    lines = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(lines) == 1 and "juggle.mp4" in lines[0], caplog.text
