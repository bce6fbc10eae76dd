"""The folders the commands write by default are ignored by git (issue 13, item 11)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "path",
    [
        "streamseg-demo/annotated.mp4",  # streamseg demo --out-dir (default)
        "streamseg-out/vtest.mp4",  # streamseg run without --out/--jsonl/--mot
        "monitor-out/events.jsonl",  # streamseg monitor's output_dir (default)
        "streamseg-api/annotated.png",  # the README's Python API example
        "examples/monitor-out/cam1/segment-0000.mp4",  # output_dir is relative to the config file
    ],
)
def test_default_output_folders_are_ignored(path: str) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=30)
    assert proc.returncode == 0, f"{path} is not ignored by .gitignore"
