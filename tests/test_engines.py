"""Engine cache, precision recipes, ONNX preparation and build-engine, without TensorRT."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from streamseg.errors import BackendError, ConfigError, EngineError
from streamseg_engines import onnx_prep
from streamseg_engines.build import RuntimeFacts, engine_key, ensure_engine
from streamseg_engines.cache import EngineCache, EngineKey, parse_size
from streamseg.calibration import calibration_source_digest, sample_frames
from streamseg_engines.calib import calibration_arrays
from streamseg_engines.precision import plan_precision
from tests.conftest import data_path

FACTS = RuntimeFacts("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def key(**changes):
    fields = dict(
        model="maskrcnn_resnet50_fpn", size=(800, 1344), precision="fp16", onnx_sha256="a" * 64,
        gpu_name=FACTS.gpu_name, compute_capability=(9, 0), tensorrt_version="10.13.0.35",
    )
    fields.update(changes)
    return EngineKey(**fields)


# -- sizes and keys ----------------------------------------------------------------------


def test_parse_size():
    assert parse_size("800x1344") == (800, 1344)
    assert parse_size(" 768X1344 ") == (768, 1344)
    for bad in ("800", "800x1333", "0x32", "axb"):
        with pytest.raises(ConfigError):
            parse_size(bad)


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "NVIDIA A100-SXM4-40GB"},
        {"compute_capability": (8, 0)},
        {"tensorrt_version": "11.4.0.106"},
        {"onnx_sha256": "b" * 64},
        {"precision": "fp32"},
        {"size": (768, 1344)},
        {"plugin_sha256": "c" * 64},
        {"calib_sha256": "d" * 64},
    ],
)
def test_every_key_field_changes_the_entry(change):
    assert key().stem() != key(**change).stem()
    assert key() != key(**change)


def test_key_round_trip_and_stem():
    k = key()
    assert EngineKey.from_dict(json.loads(json.dumps(k.to_dict()))) == k
    assert k.stem().startswith("maskrcnn_resnet50_fpn-800x1344-fp16-")
    assert key().digest() == key().digest()
    with pytest.raises(ConfigError):
        key(precision="bf16")


def test_runtime_mismatch_names_gpu_and_version():
    k = key()
    assert k.runtime_mismatch(gpu_name=FACTS.gpu_name, compute_capability=(9, 0), tensorrt_version="10.13.0.35") is None
    why = k.runtime_mismatch(gpu_name="NVIDIA L4", compute_capability=(8, 9), tensorrt_version="11.4.0.106")
    assert "NVIDIA H100" in why and "NVIDIA L4" in why and "10.13.0.35" in why and "11.4.0.106" in why


# -- the cache -----------------------------------------------------------------------------


def test_cache_builds_once_then_reuses(tmp_path):
    cache = EngineCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return b"engine-bytes", {"build_seconds": 1.0}

    first = cache.get_or_build(key(), build)
    second = cache.get_or_build(key(), build)
    assert first.built and not second.built
    assert len(calls) == 1
    assert second.path.read_bytes() == b"engine-bytes"
    assert second.info == {"build_seconds": 1.0}
    other = cache.get_or_build(key(tensorrt_version="11.4.0.106"), build)
    assert other.built and other.path != first.path and len(calls) == 2
    cache.get_or_build(key(), build, rebuild=True)
    assert len(calls) == 3
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    assert {r.key for r in cache.entries()} == {key(), key(tensorrt_version="11.4.0.106")}


def test_cache_ignores_foreign_or_broken_metadata(tmp_path):
    cache = EngineCache(tmp_path)
    record = cache.put(key(), b"x")
    meta = json.loads(record.meta_path.read_text())
    meta["key"]["onnx_sha256"] = "f" * 64  # a file under this name that records another key
    record.meta_path.write_text(json.dumps(meta))
    assert cache.get(key()) is None
    record.meta_path.write_text("{not json")
    assert cache.get(key()) is None
    record.meta_path.unlink()
    assert cache.get(key()) is None
    with pytest.raises(EngineError):
        cache.put(key(), b"")


def test_read_key_beside_engine(tmp_path):
    record = EngineCache(tmp_path).put(key(), b"x")
    assert EngineCache.read_key(record.path) == key()
    lone = tmp_path / "lone.engine"
    lone.write_bytes(b"x")
    with pytest.raises(EngineError, match="build-engine"):
        EngineCache.read_key(lone)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMSEG_ENGINES", str(tmp_path / "eng"))
    assert EngineCache().root == tmp_path / "eng"


# -- precision recipes ------------------------------------------------------------------


def test_precision_plans_follow_tensorrt_version():
    p = plan_precision("fp16", "10.13.0.35")
    assert (p.strongly_typed, p.builder_flags, p.cast_fp16, p.quantize_int8) == (False, ("FP16",), False, False)
    p = plan_precision("int8", "10.9.0")
    assert p.builder_flags == ("INT8", "FP16") and p.quantize_int8 and not p.strongly_typed
    p = plan_precision("fp16", "11.4.0.106")
    assert (p.strongly_typed, p.builder_flags, p.cast_fp16) == (True, (), True)
    p = plan_precision("int8", "11.0.0")
    assert p.strongly_typed and p.quantize_int8 and p.builder_flags == ()
    assert plan_precision("fp32", "11.0.0").builder_flags == ()
    assert "FP16" in plan_precision("fp16", "10.9.0").describe()
    for too_old in ("8.6.1", "10.0.1", "10.7.0.23", "10.8.0.43"):  # no AOT plugins in the parser before 10.9
        with pytest.raises(EngineError, match="needs TensorRT 10.9 or newer"):
            plan_precision("fp16", too_old)
    with pytest.raises(ConfigError):
        plan_precision("fp8", "10.13")


# -- ONNX preparation --------------------------------------------------------------------


def _small_model():
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "w1"),
        numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3, "w2"),
        numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32) * 0.1, "fc_w"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
        helper.make_node("MaxPool", ["a"], ["mp"], name="pool", kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Resize", ["mp", "", "scales"], ["up"], name="up", mode="nearest"),
        helper.make_node("Flatten", ["up"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w"], ["logits"], name="fc"),
        helper.make_node("Add", ["logits", "prior"], ["decoded"], name="decode"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("prior", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in ("logits", "decoded", "probs")],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cast_to_fp16_keeps_io_and_decoding_in_fp32():
    model = _small_model()
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32),
             "prior": np.arange(5, dtype=np.float32)[None] * 100}
    expected = ReferenceEvaluator(model).run(None, feeds)
    counts = onnx_prep.cast_to_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    nodes = {n.name: n for n in model.graph.node}
    inits = {t.name: t for t in model.graph.initializer}
    assert inits[nodes["conv1"].input[1]].data_type == TensorProto.FLOAT16
    assert inits[nodes["fc"].input[1]].data_type == TensorProto.FLOAT16
    assert inits["scales"].data_type == TensorProto.FLOAT  # Resize scales keep their type
    assert "w1" not in inits  # the float32 copy read by nobody is dropped
    # Box decoding (deltas added to float32 activations) and Softmax stay FP32.
    assert nodes["decode"].input[0].endswith("__to_fp32") and nodes["softmax"].input[0].endswith("__to_fp32")
    assert counts["fp16_nodes"] == 8 and counts["initializers"] == 3
    got = ReferenceEvaluator(model).run(None, feeds)
    for e, g in zip(expected, got):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, atol=2e-2, rtol=2e-2)
    assert max(float(np.abs(g - e).max()) for e, g in zip(expected, got)) > 0  # it did change precision


def _plugin_model(aot_attrs: bool = False):
    attrs = {"output_size": [7, 7], "sampling_ratio": 2, "aligned": 0, "spatial_scales": [0.25, 0.125, 0.0625, 0.03125]}
    node = helper.make_node(
        "MultiLevelRoIAlign", ["rois", "p2", "p3", "p4", "p5"], ["pooled"], name="box_roi_pool", domain="streamseg", **attrs
    )
    inputs = [helper.make_tensor_value_info("rois", TensorProto.FLOAT, [10, 4])] + [
        helper.make_tensor_value_info(f"p{k}", TensorProto.FLOAT, [1, 8, 64 >> (k - 2), 64 >> (k - 2)]) for k in (2, 3, 4, 5)
    ]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [10, 8, 7, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"streamseg.flavour": "trt", "streamseg.model": "demo", "streamseg.size": "256x256"}.items():
        model.metadata_props.add(key=k, value=v)
    return model


def test_prepare_plugin_nodes_adds_namespace_aot_and_opset():
    model = _plugin_model()
    assert onnx_prep.prepare_plugin_nodes(model) == 1
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs["plugin_namespace"] == b"streamseg" and attrs["aot"] == 1
    assert attrs["output_size"] == [7, 7]
    assert any(o.domain == "streamseg" for o in model.opset_import)
    assert onnx_prep.prepare_plugin_nodes(model, aot=False) == 1  # idempotent, no duplicates
    names = [a.name for a in model.graph.node[0].attribute]
    assert names.count("aot") == 1 and names.count("plugin_namespace") == 1


def _conv_graph(quantized: bool, scale_dtype=np.float32):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    nodes = []
    conv_in, conv_w = "x", "w"
    if quantized:
        inits = [
            numpy_helper.from_array(np.round(w / 0.02).clip(-127, 127).astype(np.int8), "w_q"),
            numpy_helper.from_array(np.array(0.02, scale_dtype), "w_scale"),
            numpy_helper.from_array(np.array(0.05, scale_dtype), "x_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "zp"], ["x_q"], name="q"),
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zp"], ["x_dq"], name="dq"),
            helper.make_node("DequantizeLinear", ["w_q", "w_scale", "zp"], ["w_dq"], name="wdq"),
        ]
        conv_in, conv_w = "x_dq", "w_dq"
    nodes += [
        helper.make_node("Relu", ["x"], ["xr"], name="pre"),
        helper.make_node("Conv", [conv_in, conv_w], ["y"], name="/backbone/conv1/Conv", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_transplant_qdq_reproduces_the_quantized_graph():
    quantized, target = _conv_graph(True), _conv_graph(False)
    result = onnx_prep.transplant_qdq(quantized, target)
    assert result == {"nodes": 1, "chains": 2, "missing": []}
    onnx.checker.check_model(target, full_check=True)
    assert "w" not in {t.name for t in target.graph.initializer}
    x = np.random.default_rng(3).standard_normal((1, 1, 6, 6)).astype(np.float32)
    expected = ReferenceEvaluator(quantized).run(None, {"x": x})[0]
    got = ReferenceEvaluator(target).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, expected)
    plain = ReferenceEvaluator(_conv_graph(False)).run(None, {"x": x})[0]
    assert not np.array_equal(got, plain)  # quantization changed the numbers


def test_transplant_of_fp16_scales_gives_a_valid_fp32_graph():
    """ModelOpt's fp16 mode writes float16 scales; onto the fp32 trt graph they must come as float32, or
    DequantizeLinear feeds float16 into a float32 Conv (a type error; TensorRT's strongly typed network rejects it)."""
    target = _conv_graph(False)
    onnx_prep.transplant_qdq(_conv_graph(True, scale_dtype=np.float16), target)
    onnx.checker.check_model(target, full_check=True)  # type inference: every Conv input float32
    assert not [t.name for t in target.graph.initializer if t.data_type == TensorProto.FLOAT16]
    assert sum(t.data_type == TensorProto.FLOAT and not t.dims for t in target.graph.initializer) >= 2  # the scales
    x = np.random.default_rng(3).standard_normal((1, 1, 6, 6)).astype(np.float32)
    # The fp16 scales, widened: the same numbers as a float32 graph with those scales.
    widened = _conv_graph(True)
    for t in widened.graph.initializer:
        if t.name in ("w_scale", "x_scale"):
            value = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(value, t.name))
    expected = ReferenceEvaluator(widened).run(None, {"x": x})[0]
    np.testing.assert_array_equal(ReferenceEvaluator(target).run(None, {"x": x})[0], expected)


def test_transplant_reports_missing_and_empty():
    quantized, target = _conv_graph(True), _conv_graph(False)
    target.graph.node[1].name = "renamed"
    assert onnx_prep.transplant_qdq(quantized, target)["missing"] == ["/backbone/conv1/Conv"]
    with pytest.raises(EngineError):
        onnx_prep.transplant_qdq(_conv_graph(False), _conv_graph(False))


# -- calibration ---------------------------------------------------------------------------


def test_calibration_arrays_layout():
    frames = [np.zeros((10, 20, 3), np.uint8), np.full((10, 20, 3), 255, np.uint8)]

    def prep(image):
        return np.full((1, 3, 32, 64), image[0, 0, 0] / 255, np.float32), (10, 20)

    arrays = calibration_arrays(frames, prep, score_thresh=0.1)
    assert arrays["images"].shape == (2, 3, 32, 64) and arrays["images"][1].max() == 1.0
    assert arrays["image_size"].tolist() == [10, 20, 10, 20]
    assert arrays["score_thresh"].tolist() == pytest.approx([0.1, 0.1])


def test_sample_frames_from_a_video():
    video = data_path("videos", "bikes.mp4")
    frames = sample_frames(video, 3)
    assert len(frames) == 3 and frames[0].shape == (272, 640, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[2])  # spread over the clip, not one frame


def test_calibration_digest(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"1")
    d1 = calibration_source_digest(folder, 8)
    assert d1 != calibration_source_digest(folder, 16)
    (folder / "a.jpg").write_bytes(b"2")
    assert d1 != calibration_source_digest(folder, 8)
    with pytest.raises(ConfigError):
        calibration_source_digest(tmp_path / "nope", 8)


# -- ensure_engine and build-engine, TensorRT stubbed --------------------------------------


def test_ensure_engine_builds_once_and_reuses(tmp_path, monkeypatch):
    import streamseg_engines.build as build
    import streamseg_engines.builder as builder

    onnx_path = tmp_path / "demo-trt.onnx"
    onnx.save(_plugin_model(), str(onnx_path))
    seen = []

    def fake_build(path, *, strongly_typed, builder_flags, timing_cache, verbose=False, device_index=0, **_):
        model = onnx.load(str(path))
        attrs = {a.name for a in model.graph.node[0].attribute}
        seen.append((strongly_typed, builder_flags, {"plugin_namespace", "aot"} <= attrs, str(timing_cache)))
        devices.append(device_index)
        return b"serialized"

    devices = []
    facts = dataclasses.replace(FACTS, device_index=1)  # the second GPU: the build must be told, not use cuda:0
    monkeypatch.setattr(build, "runtime_facts", lambda index=0: facts)
    monkeypatch.setattr(builder, "build_serialized_engine", fake_build)
    messages = []
    kwargs = dict(size=(256, 256), precision="fp16", onnx_path=onnx_path, cache=EngineCache(tmp_path / "c"),
                  progress=messages.append)
    first = ensure_engine("demo", **kwargs)
    second = ensure_engine("demo", **kwargs)
    assert first.built and not second.built and second.path == first.path
    assert len(seen) == 1 and devices == [1]
    strongly, flags, has_attrs, timing = seen[0]
    assert (strongly, flags, has_attrs) == (False, ("FP16",), True)
    assert "timing-NVIDIA_H100_80GB_HBM3-sm90-trt10.13.0.35" in timing
    assert any("building the TensorRT engine" in m for m in messages)
    assert first.key == engine_key(model="demo", size=(256, 256), precision="fp16",
                                   onnx_sha256=first.key.onnx_sha256, facts=FACTS)
    with pytest.raises(EngineError, match="does not match"):
        ensure_engine("demo", **{**kwargs, "size": (320, 320)})


def _parser():
    from streamseg_engines.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_build_engine_cli_errors_here():
    parser = _parser()
    args = parser.parse_args(["build-engine", "--model", "demo", "--size", "256x320", "--precision", "int8"])
    with pytest.raises(ConfigError, match="--calib"):
        args.func(args)
    args = parser.parse_args(["build-engine", "--model", "demo", "--size", "256x320", "--calib", "x.mp4"])
    with pytest.raises(ConfigError, match="only used with --precision int8"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["build-engine", "--size", "800x1333"])


def test_build_engine_without_gpu_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    args = _parser().parse_args(["build-engine", "--model", "demo", "--size", "256x320", "--cache-dir", str(tmp_path)])
    with pytest.raises(BackendError, match="NVIDIA GPU"):
        args.func(args)
