"""``streamseg doctor``'s TensorRT checks, registered through the ``streamseg.doctor`` entry point."""

from __future__ import annotations

from streamseg.doctor import Check, _import, _version

__all__ = ["tensorrt_checks"]


def ptx_check() -> Check:
    """``roialign-ptx``: the plugin's kernel compiles to PTX as ``@aot_impl`` compiles it; never raises.

    For the current GPU's architecture, or sm_90 without a GPU (Triton compiles without
    one), within the PTX ISA the driver and Triton's ptxas both accept. Registering the
    plugin does not compile it, so this is the check that sees a kernel TensorRT could
    not load.
    """
    triton, why = _import("triton")
    if triton is None:
        return Check("roialign-ptx", False, "", f"{why}; Triton compiles the RoIAlign plugin's kernel")
    try:
        import torch

        from streamseg_plugins.trt_node import NUM_LEVELS, RoIAlignAttributes
        from streamseg_plugins.trt_plugin import aot_kernel_args, compile_ptx

        arch = None if torch.cuda.is_available() else 90
        attributes = RoIAlignAttributes((7, 7), 2, False, tuple(1 / 2 ** (k + 2) for k in range(NUM_LEVELS)))
        args = aot_kernel_args(num_rois=8, channels=256, level_sizes=[(64, 64), (32, 32), (16, 16), (8, 8)],
                               dtype="float32", attributes=attributes)  # fmt: skip
        kernel = compile_ptx(args, arch=arch)
    except Exception as exc:  # noqa: BLE001 - reported
        return Check("roialign-ptx", False, _version(triton), f"the kernel does not compile: {exc}".splitlines()[0])
    version = next((line.split()[1] for line in kernel.ptx.splitlines() if line.startswith(".version")), "?")
    return Check("roialign-ptx", True, _version(triton), f"compiles to PTX {version} for sm_{kernel.arch}")


def tensorrt_checks() -> list[Check]:
    """``tensorrt`` (the package and its version), ``roialign-plugin`` (our plugin registers) and
    ``roialign-ptx`` (its kernel compiles, :func:`ptx_check`); never raises."""
    trt, why = _import("tensorrt")
    if trt is None:
        return [
            Check("tensorrt", False, "", f"{why}; pip install 'streamseg[tensorrt]' (TensorRT 10.9+, NVIDIA index)"),
            Check("roialign-plugin", False, "", "needs TensorRT"),
            ptx_check(),
        ]
    out = [Check("tensorrt", True, _version(trt), "")]
    plugin_api, why = _import("tensorrt.plugin")
    if plugin_api is None or not hasattr(plugin_api, "aot_impl"):
        out.append(Check("roialign-plugin", False, "", f"tensorrt.plugin with aot_impl missing (TensorRT 10.9+): {why}"))
        return out
    try:
        from streamseg_plugins.trt_plugin import PLUGIN_ID, register

        register()
        out.append(Check("roialign-plugin", True, "", f"{PLUGIN_ID} registered"))
    except Exception as exc:  # noqa: BLE001
        out.append(Check("roialign-plugin", False, "", f"registration failed: {exc}"))
    out.append(ptx_check())
    return out
