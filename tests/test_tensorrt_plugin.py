"""The TensorRT RoIAlign plugin: shape/dtype/attribute logic and the AOT kernel, without TensorRT.

The last tests need TensorRT and a CUDA GPU and skip with the reason elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamseg_plugins import trt_plugin as tp

REPO = Path(__file__).resolve().parents[1]
SCALES = (0.25, 0.125, 0.0625, 0.03125)
LEVELS = [(200, 336), (100, 168), (50, 84), (25, 42)]


class Sym:
    """A stand-in for a symbolic ``tensorrt.plugin.ShapeExpr`` (not an int)."""

    def __init__(self, name):
        self.name = name


class DType:
    """A stand-in for ``trt.DataType`` (``.name`` is ``FLOAT`` / ``HALF``)."""

    def __init__(self, name):
        self.name = name


def attrs(**changes):
    values = dict(output_size=(7, 7), sampling_ratio=2, aligned=False, spatial_scales=SCALES)
    values.update(changes)
    return tp.RoIAlignAttributes(**values)


def test_attributes_validate_and_round_trip():
    a = attrs()
    fields = a.to_plugin_fields()
    assert fields["output_size"].dtype == np.int32 and fields["spatial_scales"].dtype == np.float32
    # The decorated functions receive numpy plugin fields; they must give the same attributes.
    assert tp.RoIAlignAttributes(**fields) == a
    onnx_attrs = a.to_onnx()
    assert onnx_attrs["plugin_namespace"] == "streamseg" and onnx_attrs["aot"] == 1
    assert onnx_attrs["output_size"] == [7, 7] and onnx_attrs["aligned"] == 0
    assert a.to_onnx(aot=False)["aot"] == 0
    for bad in (dict(output_size=(7,)), dict(output_size=(0, 7)), dict(sampling_ratio=-1), dict(aligned=2),
                dict(spatial_scales=(0.25, 0.125, 0.0625)), dict(spatial_scales=(0.25, 0, 1, 1))):
        with pytest.raises(ValueError):
            attrs(**bad)


def test_attributes_from_onnx_node():
    from onnx import helper

    node = helper.make_node("MultiLevelRoIAlign", ["r", "a", "b", "c", "d"], ["o"], domain="streamseg",
                            **attrs(output_size=(14, 14), sampling_ratio=0, aligned=True).to_onnx())
    got = tp.RoIAlignAttributes.from_onnx_node(node)
    assert got == attrs(output_size=(14, 14), sampling_ratio=0, aligned=True)
    kept = [a for a in node.attribute if a.name != "output_size"]
    del node.attribute[:]
    node.attribute.extend(kept)
    with pytest.raises(ValueError, match="output_size"):
        tp.RoIAlignAttributes.from_onnx_node(node)


def test_output_shape():
    features = [(1, 256, h, w) for h, w in LEVELS]
    assert tp.output_shape((1000, 4), features, (7, 7)) == (1000, 256, 7, 7)
    assert tp.output_shape((100, 4), features, np.asarray([14, 14], np.int32)) == (100, 256, 14, 14)
    n, c = Sym("N"), Sym("C")
    out = tp.output_shape((n, 4), [(1, c, Sym("H"), Sym("W"))] * 4, (7, 7))
    assert out[0] is n and out[1] is c and out[2:] == (7, 7)
    with pytest.raises(ValueError, match="xyxy"):
        tp.output_shape((10, 5), features, (7, 7))
    with pytest.raises(ValueError, match="batch 1"):
        tp.output_shape((10, 4), [(2, 256, 8, 8)] + features[1:], (7, 7))
    with pytest.raises(ValueError, match="same channel"):
        tp.output_shape((10, 4), [(1, 128, 8, 8)] + features[1:], (7, 7))
    with pytest.raises(ValueError, match="4 feature maps"):
        tp.output_shape((10, 4), features[:3], (7, 7))


def test_output_dtype():
    half, fp32 = DType("HALF"), DType("FLOAT")
    assert tp.output_dtype(fp32, [half] * 4) is half
    assert tp.output_dtype(fp32, [fp32] * 4) is fp32
    assert tp.output_dtype("float32", [np.dtype("float16")] * 4) == np.dtype("float16")
    with pytest.raises(ValueError, match="rois must be float32"):
        tp.output_dtype(half, [half] * 4)
    with pytest.raises(ValueError, match="must all be float32 or all float16"):
        tp.output_dtype(fp32, [half, fp32, half, half])
    with pytest.raises(ValueError):
        tp.output_dtype(fp32, [DType("INT8")] * 4)


def test_autotune_offers_fp32_and_fp16_with_fp32_rois():
    entries = [e.strip() for e in tp.autotune_io_types().split(",")]
    assert len(entries) == 6  # rois, p2..p5, output
    assert entries[0] == "FP32"
    assert all(e == "FP32|FP16" for e in entries[1:])


def test_aot_kernel_args_follow_tensorrt_calling_convention():
    args = tp.aot_kernel_args(num_rois=1000, channels=256, level_sizes=LEVELS, dtype=DType("HALF"), attributes=attrs())
    runtime = [k for k, v in args.signature.items() if v != "constexpr"]
    # TensorRT passes (input pointers, int32 extra args, output pointers).
    assert runtime[:5] == ["rois_ptr", "p2_ptr", "p3_ptr", "p4_ptr", "p5_ptr"] and runtime[-1] == "out_ptr"
    assert [args.signature[k] for k in runtime[5:-1]] == ["i32"] * len(args.scalars)
    assert args.scalars == (1000, 256, 200, 336, 100, 168, 50, 84, 25, 42)
    assert args.signature["rois_ptr"] == "*fp32" and args.signature["p2_ptr"] == "*fp16"
    assert args.signature["out_ptr"] == "*fp16"
    block_c = args.constexprs["BLOCK_C"]
    assert args.grid == (1000, -(-256 // block_c), 1)
    assert (args.constexprs["OUT_H"], args.constexprs["SAMPLING_RATIO"], args.constexprs["ALIGNED"]) == (7, 2, False)
    assert args.constexprs["SCALE5"] == 0.03125
    symbolic = tp.aot_kernel_args(num_rois=Sym("N"), channels=Sym("C"), level_sizes=LEVELS, dtype="float32",
                                  attributes=attrs(), cdiv=lambda a, b: ("cdiv", a, b))
    assert symbolic.grid[1][0] == "cdiv" and symbolic.signature["p2_ptr"] == "*fp32"
    with pytest.raises(ValueError):
        tp.aot_kernel_args(num_rois=1, channels=1, level_sizes=LEVELS, dtype="int8", attributes=attrs())


def test_aot_kernel_compiles_to_ptx_for_sm90(monkeypatch):
    """The exact compile @aot_impl does, for an H100 target: no GPU needed to produce PTX.

    The kernel comes from a fresh, compiled (not interpreted) copy of the module, so the test
    holds under TRITON_INTERPRET=1 too (there the module's own kernel is an InterpretedFunction).
    """
    args = tp.aot_kernel_args(num_rois=100, channels=256, level_sizes=LEVELS, dtype="float32",
                              attributes=attrs(output_size=(14, 14), sampling_ratio=0))
    fresh = _fresh_kernel_module(monkeypatch, False).multi_level_roi_align_kernel
    kernel = tp.compile_ptx(args, arch=90, kernel=fresh)
    entry = re.search(r"\.entry\s+(\w+)\s*\((.*?)\)", kernel.ptx, re.S)
    assert entry is not None and entry.group(1) == kernel.name
    runtime = sum(v != "constexpr" for v in args.signature.values())
    # Triton appends its two scratch pointers, which TensorRT passes as null (unused: size 0).
    assert entry.group(2).count(".param") == runtime + 2
    assert ".target sm_90" in kernel.ptx and kernel.num_warps == tp.AOT_NUM_WARPS
    assert "fma.rn.f32" not in kernel.ptx  # FP contraction off, as torchvision's kernel rounds


def _fresh_kernel_module(monkeypatch, interpret: bool):
    """A fresh copy of roialign_triton, its @triton.jit applied with TRITON_INTERPRET set as asked."""
    import importlib.util

    from streamseg_plugins import roialign_triton

    if interpret:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    spec = importlib.util.spec_from_file_location("roialign_triton_fresh", roialign_triton.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ptx_stays_within_what_tritons_ptxas_accepts(monkeypatch):
    """A CUDA 13 driver loads PTX 9.0, but Triton's bundled ptxas (12.9 here) refuses `.version 9.0`:
    the ISA is the lower of the two."""
    from streamseg_plugins import trt_aot

    monkeypatch.setattr(trt_aot, "driver_ptx_version", lambda: 90)  # cuDriverGetVersion of a CUDA 13.0 driver
    cap = trt_aot.ptxas_ptx_version(90)
    assert cap is not None and cap < 90, "this Triton's ptxas takes PTX 9.0: the case cannot happen here"
    args = tp.aot_kernel_args(num_rois=10, channels=16, level_sizes=LEVELS, dtype="float32", attributes=attrs())
    kernel = tp.compile_ptx(args, arch=90, kernel=_fresh_kernel_module(monkeypatch, False).multi_level_roi_align_kernel)
    version = re.search(r"^\.version (\d+)\.(\d+)", kernel.ptx, re.M)
    assert version is not None and int(version.group(1)) * 10 + int(version.group(2)) == cap


def test_compile_errors_are_plugin_registration_errors(monkeypatch):
    from streamseg_plugins import trt_aot

    monkeypatch.setattr(trt_aot, "ptxas_ptx_version", lambda arch: None)
    args = tp.aot_kernel_args(num_rois=10, channels=16, level_sizes=LEVELS, dtype="float32", attributes=attrs())
    kernel = _fresh_kernel_module(monkeypatch, False).multi_level_roi_align_kernel
    with pytest.raises(tp.PluginRegistrationError, match="could not compile the RoIAlign kernel for sm_90"):
        tp.compile_ptx(args, arch=90, ptx_version=95, kernel=kernel)  # an ISA no ptxas here knows


def test_an_interpreted_kernel_is_a_clear_error(monkeypatch):
    """Under TRITON_INTERPRET=1 the kernel is Triton's InterpretedFunction, which has no PTX."""
    args = tp.aot_kernel_args(num_rois=10, channels=16, level_sizes=LEVELS, dtype="float32", attributes=attrs())
    interpreted = _fresh_kernel_module(monkeypatch, True).multi_level_roi_align_kernel
    with pytest.raises(tp.PluginRegistrationError, match="TRITON_INTERPRET=1"):
        tp.compile_ptx(args, arch=90, kernel=interpreted)


def test_register_without_tensorrt_says_what_is_missing():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(tp.PluginRegistrationError, match="TensorRT"):
            tp.register()
        assert not tp.is_registered()
    else:
        pytest.skip("TensorRT is installed here: covered by the GPU tests")


def test_no_tensorrt_import_anywhere():
    """Importing streamseg, the backends, the engines and the plugin module never imports TensorRT."""
    code = (
        "import sys\n"
        "import streamseg, streamseg.cli, streamseg.backends, streamseg.doctor\n"
        "import streamseg.backends.torch_backend, streamseg_engines.tensorrt_backend\n"
        "import streamseg_engines, streamseg_engines.cli, streamseg_engines.build, streamseg_engines.builder\n"
        "import streamseg_engines.cache, streamseg_engines.onnx_prep, streamseg_engines.precision\n"
        "import streamseg_plugins.trt_plugin\n"
        "bad = sorted(m for m in sys.modules if m == 'tensorrt' or m.startswith('tensorrt.') or m == 'pycuda')\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# -- TensorRT + GPU --------------------------------------------------------------------------


def _tensorrt_and_gpu():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'streamseg[tensorrt]')")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return trt


def _plugin_engine(tmp_path, features, rois, attributes, half):
    """A one-node network (the plugin) through the ONNX parser, FP32 or FP16 features."""
    import onnx
    from onnx import TensorProto, helper

    from streamseg_engines.builder import build_serialized_engine

    ftype = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    node = helper.make_node("MultiLevelRoIAlign", ["rois", "p2", "p3", "p4", "p5"], ["pooled"],
                            domain="streamseg", **attributes.to_onnx(aot=True))
    n, c = rois.shape[0], features[0].shape[1]
    inputs = [helper.make_tensor_value_info("rois", TensorProto.FLOAT, list(rois.shape))] + [
        helper.make_tensor_value_info(f"p{k}", ftype, list(f.shape)) for k, f in zip((2, 3, 4, 5), features)
    ]
    out = helper.make_tensor_value_info("pooled", ftype, [n, c, *attributes.output_size])
    model = helper.make_model(helper.make_graph([node], "plugin", inputs, [out]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("streamseg", 1)])
    path = tmp_path / "plugin.onnx"
    onnx.save(model, str(path))
    return build_serialized_engine(path, strongly_typed=True)


@pytest.mark.parametrize("half,tol", [(False, 1e-3), (True, 1e-2)])
def test_plugin_matches_torchvision(tmp_path, half, tol):
    trt = _tensorrt_and_gpu()
    import torch
    from torchvision.ops import MultiScaleRoIAlign

    tp.register()
    g = torch.Generator().manual_seed(0)
    sizes = [(64, 96), (32, 48), (16, 24), (8, 12)]
    feats = [torch.randn(1, 16, h, w, generator=g) for h, w in sizes]
    xy = torch.rand(60, 2, generator=g) * torch.tensor([300.0, 200.0])
    wh = torch.rand(60, 2, generator=g) * 250 + 2
    rois = torch.cat([xy, xy + wh], 1)
    a = attrs(output_size=(7, 7), sampling_ratio=2)
    pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 2)
    expected = pooler({f"p{k}": f for k, f in zip((2, 3, 4, 5), feats)}, [rois], [(256, 384)])
    dtype = torch.float16 if half else torch.float32
    engine_bytes = _plugin_engine(tmp_path, [f.numpy() for f in feats], rois.numpy(), a, half)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    buffers = {"rois": rois.cuda(), **{f"p{k}": f.to("cuda", dtype) for k, f in zip((2, 3, 4, 5), feats)}}
    buffers["pooled"] = torch.empty(tuple(expected.shape), dtype=dtype, device="cuda")
    for name, t in buffers.items():
        context.set_tensor_address(name, t.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    torch.testing.assert_close(buffers["pooled"].float().cpu(), expected, atol=tol, rtol=tol)


def created_attributes(fn, plugin_fields):
    """The attributes ``tensorrt.plugin``'s ``create_plugin`` hands ``fn``, from the parser's plugin fields.

    As in tensorrt/plugin/_lib.py (``_TemplatePluginCreator.create_plugin``): a field whose
    annotation is ``npt.NDArray[dtype]`` becomes ``f.data.astype(dtype)``; any other annotation
    is called on the one-element array, ``annotation(f.data)`` (``int(np.array([2]))`` raises
    TypeError from NumPy 2.4 on).
    """
    import inspect
    import typing

    out = {}
    for name, value in plugin_fields.items():
        annotation = inspect.signature(fn).parameters[name].annotation
        if typing.get_origin(annotation) is np.ndarray:
            dtype = typing.get_args(typing.get_args(annotation)[1])[0]
            out[name] = value.astype(dtype)
        else:
            out[name] = annotation(value)
    return out


def test_decorated_functions_with_a_stand_in_tensorrt_plugin_module(monkeypatch):
    """Apply the real decorators' bodies (``_define``) to a stand-in ``tensorrt.plugin`` and call them."""
    import types

    registered = {}

    def deco(kind):
        def outer(plugin_id):
            assert plugin_id == tp.PLUGIN_ID

            def inner(fn):
                registered[kind] = fn
                return fn

            return inner

        return outer

    class TensorDesc:
        def __init__(self, shape, dtype):
            self.shape_expr, self.dtype = tuple(shape), dtype

    class ShapeExprs(tuple):
        @classmethod
        def from_tuple(cls, values):
            return cls(values)

    class KernelLaunchParams:
        pass

    fake = types.SimpleNamespace(
        register=deco("register"), autotune=deco("autotune"), aot_impl=deco("aot_impl"), impl=deco("impl"),
        TensorDesc=TensorDesc, Tensor=object, ShapeExprs=ShapeExprs, KernelLaunchParams=KernelLaunchParams,
        AutoTuneCombination=lambda io: ("combination", io), SymExprs=object,
        SymIntExprs=types.SimpleNamespace(from_tuple=tuple), SymInt32=lambda v: ("i32", v),
        from_shape_expr=lambda shape, dtype: TensorDesc(shape, dtype), cdiv=lambda a, b: -(-a // b),
    )
    tp._define(fake)
    assert set(registered) == {"register", "autotune", "aot_impl", "impl"}
    half, fp32 = DType("HALF"), DType("FLOAT")
    rois = TensorDesc((1000, 4), fp32)
    feats = [TensorDesc((1, 256, h, w), half) for h, w in LEVELS]
    plugin_fields = attrs().to_plugin_fields()
    assert all(isinstance(v, np.ndarray) and v.ndim == 1 for v in plugin_fields.values())  # what the parser makes
    fields = created_attributes(registered["register"], plugin_fields)
    assert created_attributes(registered["aot_impl"], plugin_fields).keys() == fields.keys()
    out = registered["register"](rois, *feats, **fields)
    assert out.shape_expr == (1000, 256, 7, 7) and out.dtype is half
    assert registered["autotune"](rois, *feats, (out,)) == [("combination", tp.AUTOTUNE_IO_TYPES)]
    seen = {}

    def fake_compile(args, **_):
        seen["args"] = args
        return tp.CompiledKernel(name="k", ptx=".entry k()", num_warps=4, shared_mem=64, arch=90)

    monkeypatch.setattr(tp, "compile_ptx", fake_compile)
    name, ptx, params, extra = registered["aot_impl"](rois, *feats, **fields, outputs=(out,), tactic=0)
    assert (name, ptx) == (b"k", b".entry k()")
    assert (params.grid_x, params.grid_y, params.grid_z) == seen["args"].grid == (1000, 4, 1)
    assert (params.block_x, params.shared_mem) == (128, 64)
    assert extra == tuple(("i32", v) for v in (1000, 256, 200, 336, 100, 168, 50, 84, 25, 42))
    assert seen["args"].signature["p2_ptr"] == "*fp16"


def _stand_in_tensorrt_plugin(monkeypatch, *, fail_aot: Exception | None):
    """``tensorrt``, ``tensorrt.plugin`` and ``tensorrt.plugin._lib`` as the real ones behave for registration.

    As in tensorrt/plugin/_lib.py: ``register`` puts a PluginDef into ``QDP_REGISTRY`` (a second
    ``register`` of the same id raises ValueError "... already has a definition"), and ``aot_impl``
    validates its function before setting ``aot_impl_func`` (here: raises ``fail_aot`` if given).
    """
    import types

    lib = types.ModuleType("tensorrt.plugin._lib")
    lib.QDP_REGISTRY = {}

    def register(plugin_id):
        def inner(fn):
            if plugin_id in lib.QDP_REGISTRY:
                raise ValueError(f"Plugin {plugin_id} already has a definition.")
            lib.QDP_REGISTRY[plugin_id] = types.SimpleNamespace(register_func=fn, aot_impl_func=None, impl_func=None)
            return fn
        return inner

    def aot_impl(plugin_id):
        def inner(fn):
            if fail_aot is not None:
                raise fail_aot
            lib.QDP_REGISTRY[plugin_id].aot_impl_func = fn
            return fn
        return inner

    def passthrough(plugin_id):
        return lambda fn: fn

    plugin = types.ModuleType("tensorrt.plugin")
    for name in ("TensorDesc", "Tensor", "AutoTuneCombination", "KernelLaunchParams", "SymExprs"):
        setattr(plugin, name, type(name, (), {}))
    plugin.register, plugin.aot_impl, plugin.autotune, plugin.impl = register, aot_impl, passthrough, passthrough
    plugin._lib = lib
    trt = types.ModuleType("tensorrt")
    trt.plugin = plugin
    for name, module in (("tensorrt", trt), ("tensorrt.plugin", plugin), ("tensorrt.plugin._lib", lib)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(tp, "_REGISTERED", False)
    return lib


def test_a_half_done_registration_is_not_taken_for_success(monkeypatch):
    lib = _stand_in_tensorrt_plugin(monkeypatch, fail_aot=ValueError("aot_impl signature does not match"))
    with pytest.raises(tp.PluginRegistrationError, match="signature does not match"):
        tp.register()
    assert lib.QDP_REGISTRY[tp.PLUGIN_ID].aot_impl_func is None  # register ran, aot_impl did not
    with pytest.raises(tp.PluginRegistrationError, match="without its AOT implementation"):
        tp.register()  # "already has a definition" must not pass for success
    assert not tp.is_registered()


def test_registration_errors_of_any_kind_are_plugin_registration_errors(monkeypatch):
    _stand_in_tensorrt_plugin(monkeypatch, fail_aot=TypeError("bad annotation"))
    with pytest.raises(tp.PluginRegistrationError, match="TypeError: bad annotation"):
        tp.register()
    lib = _stand_in_tensorrt_plugin(monkeypatch, fail_aot=None)
    tp.register()
    assert tp.is_registered() and lib.QDP_REGISTRY[tp.PLUGIN_ID].aot_impl_func is not None
    monkeypatch.setattr(tp, "_REGISTERED", False)
    tp.register()  # registered earlier, with its AOT implementation: fine
    assert tp.is_registered()
