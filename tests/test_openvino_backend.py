"""The OpenVINO backend: its errors, its options, and a run through the CLI (parity is in test_graph.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from streamseg.config import ModelConfig
from streamseg.errors import BackendError, ConfigError

openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'streamseg[openvino]')")


def test_missing_openvino_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamseg.backends import openvino_backend

    monkeypatch.setitem(sys.modules, "openvino", None)  # what Python does for a package that is not there
    with pytest.raises(BackendError, match=r"pip install 'streamseg\[openvino\]'"):
        openvino_backend.OpenVINOBackend("demo")


def test_device_and_precision_are_checked() -> None:
    from streamseg.backends.openvino_backend import OpenVINOBackend

    with pytest.raises(ConfigError, match="runs on the CPU"):
        OpenVINOBackend("demo", device="cuda")
    with pytest.raises(ConfigError, match="fp32 or bf16"):
        OpenVINOBackend("demo", precision="fp16")
    backend = OpenVINOBackend("demo", precision="bf16", threads=1)
    assert backend.compile_options() == {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "1", "INFERENCE_PRECISION_HINT": "bf16",
    }  # fmt: skip
    assert ModelConfig(backend="openvino").resolved_precision == "fp32"
    assert ModelConfig(backend="tensorrt").resolved_precision == "fp16"


def test_cli_runs_the_openvino_backend_and_caches_the_compiled_model(tmp_path: Path, monkeypatch) -> None:
    from streamseg.cli import main
    from streamseg.datasets.demo_export import write_clip

    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    clip = write_clip(tmp_path / "clip", seed=3, num_frames=4)["video"]
    jsonl = tmp_path / "out.jsonl"
    code = main(["run", str(clip), "--model", "demo", "--backend", "openvino", "--jsonl", str(jsonl)])
    assert code == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 4 and sum(len(r["instances"]) for r in lines) > 0
    assert list((tmp_path / "cache").rglob("openvino/*.blob"))  # OpenVINO's model cache beside the ONNX
