"""``streamseg doctor``: which backends can run here, and why not.

Checks each dependency a backend needs (torch and its CUDA, torchvision's ops,
ONNX Runtime and its execution providers, TensorRT and its ``tensorrt.plugin``
API, our RoIAlign plugin, cuda-python, Triton, ModelOpt for INT8) and prints one
line per check with its version, then one verdict per backend, then how long the
checks took and which were slowest. Nothing is imported at module import; every
check catches its own failure, so the doctor itself never fails on a broken install.

Speed: the checks are the imports themselves (measured on 2 idle cores: torch 1.2 s,
torchvision 1.3 s, most of it the torch._dynamo that torchvision.ops imports, onnx 0.6 s,
the rest under 0.1 s), and the report ends with the slowest of them. Running them at the
same time does not help: imports hold the GIL (threads: 3.19 s against 3.15 s one after
another), torchvision needs torch first, and onnxruntime-extensions imports both torch
and onnx, so a second process would import one of them again (5.0 s -> 7.0 s on a busy
machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHECKS_GROUP",
    "Check",
    "add_parser",
    "backend_verdicts",
    "cmd_doctor",
    "collect",
    "format_report",
    "format_timing",
]


@dataclasses.dataclass(frozen=True)
class Check:
    """One dependency check.

    Attributes:
        name: what was checked, e.g. ``"torch"``, ``"cuda"``, ``"tensorrt"``.
        ok: True (usable), False (missing or broken).
        version: its version, or "".
        detail: one line: what it found, or why not and the fix.
        seconds: how long the check took (mostly the import), wall-clock seconds; for a
            step that yields several checks (torch and cuda), the first one carries it.
    """

    name: str
    ok: bool
    version: str = ""
    detail: str = ""
    seconds: float = 0.0


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "") or "")


def _import(name: str) -> tuple[Any | None, str]:
    """``(module, "")`` or ``(None, reason)``; never raises."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError from missing .so, anything
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def _check_torch() -> list[Check]:
    torch, why = _import("torch")
    if torch is None:
        return [Check("torch", False, "", why), Check("cuda", False, "", "torch is missing")]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    out = [Check("torch", True, _version(torch), build)]
    try:
        if torch.cuda.is_available():
            gpus = [
                f"cuda:{i} {torch.cuda.get_device_name(i)} (sm_{''.join(map(str, torch.cuda.get_device_capability(i)))})"
                for i in range(torch.cuda.device_count())
            ]
            out.append(Check("cuda", True, str(torch.version.cuda or ""), "; ".join(gpus)))
        else:
            reason = "no NVIDIA GPU or driver visible to torch" if torch.version.cuda else "torch is a CPU-only build"
            out.append(Check("cuda", False, "", f"torch.cuda.is_available() is False: {reason}"))
    except Exception as exc:  # noqa: BLE001
        out.append(Check("cuda", False, "", f"CUDA query failed: {exc}"))
    return out


def _check_torchvision() -> Check:
    tv, why = _import("torchvision")
    if tv is None:
        return Check("torchvision", False, "", why)
    try:
        import torch

        tv.ops.nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
    except Exception as exc:  # noqa: BLE001
        return Check("torchvision", False, _version(tv), f"its C++ ops do not load ({exc}); reinstall a matching torch")
    return Check("torchvision", True, _version(tv), "C++ ops load")


def _check_onnxruntime() -> Check:
    ort, why = _import("onnxruntime")
    if ort is None:
        return Check("onnxruntime", False, "", f"{why}; pip install 'streamseg[onnx]'")
    providers = ort.get_available_providers()
    return Check("onnxruntime", True, _version(ort), "providers: " + ", ".join(providers))


def _check_openvino() -> Check:
    ov, why = _import("openvino")
    if ov is None:
        return Check("openvino", False, "", f"{why}; pip install 'streamseg[openvino]'")
    try:
        core = ov.Core()
        cpu = core.get_property("CPU", "FULL_DEVICE_NAME")
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # noqa: BLE001 - reported
        return Check("openvino", False, _version(ov), f"its CPU plugin does not load ({exc})".splitlines()[0])
    bf16 = "bf16 available" if "BF16" in caps else "no bf16 on this CPU"
    return Check("openvino", True, _version(ov), f"CPU: {cpu}; {bf16}")


def _check_simple(name: str, module: str, fix: str, detail: str = "") -> Check:
    mod, why = _import(module)
    if mod is None:
        return Check(name, False, "", f"{why}; {fix}")
    return Check(name, True, _version(mod), detail)


def _check_cuda_python() -> Check:
    driver, why = _import("cuda.bindings.driver")
    if driver is None:
        return Check("cuda-python", False, "", f"{why}; pip install cuda-python")
    bindings, _ = _import("cuda.bindings")
    version = _version(bindings)
    try:
        err, raw = driver.cuDriverGetVersion()
        if int(err) == 0 and raw > 0:
            return Check("cuda-python", True, version, f"CUDA driver {raw // 1000}.{(raw % 1000) // 10}")
        return Check("cuda-python", True, version, f"no CUDA driver ({err})")
    except Exception as exc:  # noqa: BLE001 - cuda-python raises when libcuda is absent
        return Check("cuda-python", True, version, f"no CUDA driver: {str(exc).split('. ')[0][:100]}")


#: Entry-point group of extra checks from installed packages: ``name = "module:function"``,
#: ``function() -> list[Check]`` (``streamseg_engines`` adds TensorRT and the RoIAlign plugin).
CHECKS_GROUP = "streamseg.doctor"


def _registered_checks() -> list[Check]:
    """The checks installed packages register (TensorRT comes this way: the library never imports it)."""
    from importlib.metadata import entry_points

    eps = list(entry_points(group=CHECKS_GROUP))
    if not eps:
        why = "streamseg's TensorRT package (streamseg_engines) is not installed"
        return [Check("tensorrt", False, "", why), Check("roialign-plugin", False, "", "needs TensorRT")]
    out: list[Check] = []
    for ep in eps:
        try:
            out += ep.load()()
        except Exception as exc:  # noqa: BLE001 - a broken check must not break the doctor
            out.append(Check(ep.name, False, "", f"check failed: {exc}"))
    return out


def _check_python() -> list[Check]:
    return [Check("python", True, platform.python_version(), f"{platform.system()} {platform.machine()}")]


_ONNX_FIX = "pip install 'streamseg[onnx]'"

#: Every check step, in report order (each returns its checks; torch comes before torchvision,
#: which imports it).
_STEPS: dict[str, Callable[[], list[Check]]] = {
    "python": _check_python,
    "torch": _check_torch,
    "torchvision": lambda: [_check_torchvision()],
    "onnx": lambda: [_check_simple("onnx", "onnx", _ONNX_FIX)],
    "onnxruntime": lambda: [_check_onnxruntime()],
    "onnxruntime-extensions": lambda: [_check_simple("onnxruntime-extensions", "onnxruntime_extensions", _ONNX_FIX)],
    "openvino": lambda: [_check_openvino()],
    "triton": lambda: [_check_simple("triton", "triton", "pip install triton (comes with torch's CUDA build)")],
    "cuda-python": lambda: [_check_cuda_python()],
    "registered": _registered_checks,
    "modelopt": lambda: [
        _check_simple("modelopt", "modelopt", "pip install 'nvidia-modelopt[onnx]' (only for INT8 engines)")
    ],
}


def _run_step(key: str) -> list[Check]:
    """Run one step, timed (the first check carries the step's seconds); never raises."""
    t0 = time.perf_counter()
    try:
        checks = _STEPS[key]()
    except Exception as exc:  # noqa: BLE001 - a check must not break the doctor
        checks = [Check(key, False, "", f"check failed: {type(exc).__name__}: {exc}".splitlines()[0])]
    if not checks:
        return checks
    return [dataclasses.replace(checks[0], seconds=round(time.perf_counter() - t0, 3)), *checks[1:]]


def collect() -> list[Check]:
    """Run every check, each timed (:attr:`Check.seconds`); never raises."""
    return [c for key in _STEPS for c in _run_step(key)]


def format_timing(checks: list[Check], wall_s: float) -> str:
    """One line: the doctor's wall time and its slowest checks (``checked in 3.1 s; slowest: ...``)."""
    slow = sorted((c for c in checks if c.seconds >= 0.05), key=lambda c: -c.seconds)[:3]
    parts = ", ".join(f"{c.name} {c.seconds:.1f} s" for c in slow)
    return f"checked in {wall_s:.1f} s" + (f"; slowest imports: {parts}" if parts else "")


def backend_verdicts(checks: list[Check]) -> dict[str, tuple[bool, str]]:
    """``{backend: (can_run, why)}`` from the checks.

    - torch: torch and torchvision's ops (CPU, and CUDA when a GPU is visible).
    - onnxruntime: onnxruntime (its providers say CPU or CUDA).
    - openvino: OpenVINO and its CPU plugin.
    - tensorrt: TensorRT, a CUDA GPU visible to torch, the registered plugin and its kernel compiled.
    """
    by = {c.name: c for c in checks}

    def ok(name: str) -> bool:
        return name in by and by[name].ok

    def why_not(names: list[str]) -> str:
        return "; ".join(f"{n}: {by[n].detail}" for n in names if n in by and not by[n].ok)

    out: dict[str, tuple[bool, str]] = {}
    need = ["torch", "torchvision"]
    if all(ok(n) for n in need):
        out["torch"] = (True, "on cpu" + (" and cuda" if ok("cuda") else ""))
    else:
        out["torch"] = (False, why_not(need))
    if ok("onnxruntime"):
        out["onnxruntime"] = (True, by["onnxruntime"].detail)
    else:
        out["onnxruntime"] = (False, why_not(["onnxruntime"]))
    if ok("openvino"):
        out["openvino"] = (True, by["openvino"].detail)
    else:
        out["openvino"] = (False, why_not(["openvino"]))
    need = ["tensorrt", "cuda", "roialign-plugin", "roialign-ptx"]
    if all(ok(n) for n in need):
        out["tensorrt"] = (True, f"TensorRT {by['tensorrt'].version} on {by['cuda'].detail}")
    else:
        out["tensorrt"] = (False, why_not(need))
    return out


def format_report(checks: list[Check], verdicts: dict[str, tuple[bool, str]]) -> str:
    """The human-readable report: one line per check, then one per backend."""
    width = max(len(c.name) for c in checks)
    lines = ["dependencies:"]
    for c in checks:
        mark = "ok " if c.ok else "-- "
        version = f" {c.version}" if c.version else ""
        detail = f"  ({c.detail})" if c.detail else ""
        lines.append(f"  {mark}{c.name:<{width}}{version}{detail}")
    lines.append("backends:")
    for name, (can, why) in verdicts.items():
        lines.append(f"  {name:<12} {'can run' if can else 'cannot run'}: {why}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``doctor`` subcommand; its ``func`` is :func:`cmd_doctor`."""
    p = subparsers.add_parser(
        "doctor",
        help="show which backends can run here and why not (torch, CUDA, ONNX Runtime, OpenVINO, TensorRT, the plugin)",
        description="Check torch and CUDA, torchvision's ops, ONNX Runtime and its execution providers, "
        "TensorRT, the streamseg RoIAlign TensorRT plugin, cuda-python, Triton and ModelOpt, with versions, "
        "and say which backends can run here.",
    )
    p.add_argument("--json", action="store_true", help="print the checks and verdicts as JSON")
    p.set_defaults(func=cmd_doctor)
    return p


def cmd_doctor(args: argparse.Namespace, *, out: Callable[[str], None] | None = None) -> int:
    """Print the report (or JSON with ``--json``). Returns 0: the report is the result."""
    write = out or (lambda text: print(text, file=sys.stdout))
    t0 = time.perf_counter()
    checks = collect()
    wall_s = time.perf_counter() - t0
    verdicts = backend_verdicts(checks)
    if getattr(args, "json", False):
        write(json.dumps({
            "checks": [dataclasses.asdict(c) for c in checks],
            "backends": {k: {"ok": v[0], "why": v[1]} for k, v in verdicts.items()},
            "seconds": round(wall_s, 3),
        }, indent=2))
    else:
        write(format_report(checks, verdicts) + "\n" + format_timing(checks, wall_s))
    return 0
