"""``streamseg doctor`` on this machine, and its verdict logic."""

from __future__ import annotations

import argparse
import json

import pytest

from streamseg import doctor


def test_doctor_report_here():
    lines = []
    assert doctor.cmd_doctor(argparse.Namespace(json=False), out=lines.append) == 0
    text = "\n".join(lines)
    assert "dependencies:" in text and "backends:" in text
    for name in ("torch", "onnxruntime", "tensorrt", "roialign-plugin", "cuda"):
        assert name in text
    checks = {c.name: c for c in doctor.collect()}
    assert checks["torch"].ok and checks["torch"].version
    verdicts = doctor.backend_verdicts(list(checks.values()))
    assert verdicts["torch"][0]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert not verdicts["tensorrt"][0] and "tensorrt" in verdicts["tensorrt"][1]
        assert "tensorrt" in text and "cannot run" in text


def test_doctor_json_and_parser():
    parser = argparse.ArgumentParser()
    doctor.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--json"])
    lines = []
    assert args.func(args, out=lines.append) == 0
    data = json.loads(lines[0])
    assert set(data["backends"]) == {"torch", "onnxruntime", "openvino", "tensorrt"}
    assert any(c["name"] == "tensorrt" for c in data["checks"])


def test_verdicts_need_every_tensorrt_piece():
    C = doctor.Check
    base = [C("torch", True, "2.15"), C("torchvision", True, "0.29"), C("onnxruntime", True, "1.2", "providers: CPU")]
    good = base + [C("cuda", True, "13.0", "cuda:0 H100"), C("tensorrt", True, "10.13"), C("roialign-plugin", True),
                   C("roialign-ptx", True)]  # fmt: skip
    assert doctor.backend_verdicts(good)["tensorrt"] == (True, "TensorRT 10.13 on cuda:0 H100")
    no_ptx = good[:-1] + [C("roialign-ptx", False, "", "the kernel does not compile")]
    assert doctor.backend_verdicts(no_ptx)["tensorrt"] == (False, "roialign-ptx: the kernel does not compile")
    no_plugin = base + [C("cuda", True, "", "x"), C("tensorrt", True, "10.3"), C("roialign-plugin", False, "", "old")]
    ok, why = doctor.backend_verdicts(no_plugin)["tensorrt"]
    assert not ok and "roialign-plugin: old" in why
    no_gpu = base + [C("cuda", False, "", "no GPU"), C("tensorrt", True, "10.13"), C("roialign-plugin", True)]
    assert doctor.backend_verdicts(no_gpu)["tensorrt"] == (False, "cuda: no GPU")
    assert doctor.backend_verdicts(no_gpu)["torch"] == (True, "on cpu")


def test_doctor_compiles_the_plugin_kernel_and_reports_a_kernel_tensorrt_could_not_load(monkeypatch) -> None:
    """Registering the plugin compiles nothing; the roialign-ptx check compiles the kernel as @aot_impl does
    (for sm_90 without a GPU), so a PTX ISA Triton's ptxas refuses shows in the doctor, not at engine build."""
    pytest.importorskip("triton", reason="Triton is not installed")
    from streamseg_engines.doctor import ptx_check
    from streamseg_plugins import trt_aot

    check = ptx_check()
    assert check.ok and check.name == "roialign-ptx" and "sm_" in check.detail and "PTX" in check.detail
    monkeypatch.setattr(trt_aot, "ptxas_ptx_version", lambda arch: None)
    monkeypatch.setattr(trt_aot, "driver_ptx_version", lambda: 95)  # a driver newer than every ptxas here
    bad = ptx_check()
    assert not bad.ok and "does not compile" in bad.detail
