"""`streamseg doctor` says how long it took and which imports were slowest (issue 13, item 11)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from streamseg import doctor


def test_report_says_how_long_and_which_imports_were_slowest() -> None:
    proc = subprocess.run([sys.executable, "-m", "streamseg.cli", "doctor"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"checked in \d+\.\d s; slowest imports: \S+ \d+\.\d s(, \S+ \d+\.\d s){0,2}", last), last
    assert "torch" in last  # torch or torchvision (which imports torch._dynamo) is always among the slowest


def test_json_has_the_seconds_of_each_check_and_in_all() -> None:
    lines: list[str] = []
    assert doctor.cmd_doctor(argparse.Namespace(json=True), out=lines.append) == 0
    data = json.loads(lines[0])
    assert data["seconds"] > 0 and all(c["seconds"] >= 0 for c in data["checks"])
    names = [c["name"] for c in data["checks"]]
    assert names[:4] == ["python", "torch", "cuda", "torchvision"] and names[-1] == "modelopt"
    assert sum(c["seconds"] for c in data["checks"]) <= data["seconds"] + 0.01


def test_a_check_that_raises_is_a_failed_check_and_the_rest_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[doctor.Check]:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(doctor._STEPS, "onnx", broken)
    checks = {c.name: c for c in doctor.collect()}
    assert not checks["onnx"].ok and checks["onnx"].detail == "check failed: RuntimeError: boom"
    assert checks["torch"].ok and "modelopt" in checks


def test_format_timing_names_the_three_slowest() -> None:
    C = doctor.Check
    checks = [C("a", True, seconds=0.2), C("b", True, seconds=1.25), C("c", True, seconds=0.01), C("d", True, seconds=0.6),
              C("e", True, seconds=0.3)]  # fmt: skip
    assert doctor.format_timing(checks, 2.44) == "checked in 2.4 s; slowest imports: b 1.2 s, d 0.6 s, e 0.3 s"
    assert doctor.format_timing([C("a", True)], 0.04) == "checked in 0.0 s"
