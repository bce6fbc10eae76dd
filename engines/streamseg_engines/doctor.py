"""``streamseg doctor``'s TensorRT checks, registered through the ``streamseg.doctor`` entry point."""

from __future__ import annotations

from streamseg.doctor import Check, _import, _version

__all__ = ["tensorrt_checks"]


def tensorrt_checks() -> list[Check]:
    """``tensorrt`` (the package and its version) and ``roialign-plugin`` (our plugin registers); never raises."""
    trt, why = _import("tensorrt")
    if trt is None:
        return [
            Check("tensorrt", False, "", f"{why}; pip install 'streamseg[tensorrt]' (TensorRT 10.9+, NVIDIA index)"),
            Check("roialign-plugin", False, "", "needs TensorRT"),
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
    return out
