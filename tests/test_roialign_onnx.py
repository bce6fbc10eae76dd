"""ONNX export of MultiLevelRoIAlign in both flavours, run under ONNX Runtime.

A module holding just the op is exported with the TorchScript exporter (opset 17,
``dynamo=False``) inside ``onnx_flavour("trt")`` and ``onnx_flavour("ort")``. Both graphs must
pass ``onnx.checker``, contain no ``Loop``, have the documented nodes and attributes, and give
the PyTorch result within 1e-5 under ONNX Runtime (the "trt" graph through the
onnxruntime-extensions Python op of ``streamseg.ops.ort_custom_op``).
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch

from streamseg.errors import ConfigError
from streamseg.ops import (
    CUSTOM_OPSETS,
    MultiLevelRoIAlign,
    current_onnx_flavour,
    multi_level_roi_align,
    onnx_flavour,
)
from tests.test_roialign import ATOL, make_features, make_rois

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

from streamseg.ops import ort_custom_op  # noqa: E402  (needs the packages checked above)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Custom opset domain:UserWarning"),
]

INPUT_NAMES = ["rois", "p2", "p3", "p4", "p5"]
#: (output_size, sampling_ratio, aligned): torchvision's box head, and the other conventions.
CONFIGS = [(7, 2, False), (14, 0, True)]


class JustTheOp(torch.nn.Module):
    """A tiny model: the op and nothing else."""

    def __init__(self, output_size: int, sampling_ratio: int, aligned: bool) -> None:
        super().__init__()
        self.pool = MultiLevelRoIAlign(output_size, sampling_ratio, aligned)

    def forward(self, rois, p2, p3, p4, p5):
        return self.pool(rois, p2, p3, p4, p5)


def export(model: torch.nn.Module, flavour: str, channels: int = 4) -> bytes:
    rois, features = make_rois(per_level=2), make_features(channels=channels)
    buffer = io.BytesIO()
    with onnx_flavour(flavour):
        torch.onnx.export(
            model,
            (rois, *features),
            buffer,
            opset_version=17,
            dynamo=False,
            input_names=INPUT_NAMES,
            output_names=["pooled"],
            dynamic_axes={"rois": {0: "num_rois"}, "pooled": {0: "num_rois"}},
            custom_opsets=CUSTOM_OPSETS if flavour == "trt" else None,
        )
    return buffer.getvalue()


@functools.cache
def exported(flavour: str, config: tuple[int, int, bool]) -> bytes:
    return export(JustTheOp(*config).eval(), flavour)


def all_nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from all_nodes(attribute.g)
            for subgraph in attribute.graphs:
                yield from all_nodes(subgraph)


def attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("flavour", ["trt", "ort"])
def test_exported_graph_is_valid_and_loop_free(flavour: str, config: tuple[int, int, bool]) -> None:
    model = onnx.load_from_string(exported(flavour, config))
    onnx.checker.check_model(model, full_check=True)
    op_types = [node.op_type for node in all_nodes(model.graph)]
    assert "Loop" not in op_types and "If" not in op_types and "Scan" not in op_types
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_trt_flavour_is_one_custom_node(config: tuple[int, int, bool]) -> None:
    output_size, sampling_ratio, aligned = config
    model = onnx.load_from_string(exported("trt", config))
    nodes = list(all_nodes(model.graph))
    custom = [n for n in nodes if (n.domain, n.op_type) == ("streamseg", "MultiLevelRoIAlign")]
    assert len(custom) == 1 and len(nodes) == 1, [(n.domain, n.op_type) for n in nodes]
    node = custom[0]
    assert list(node.input) == INPUT_NAMES
    types = {a.name: a.type for a in node.attribute}
    assert types == {
        "output_size": onnx.AttributeProto.INTS,
        "sampling_ratio": onnx.AttributeProto.INT,
        "aligned": onnx.AttributeProto.INT,
        "spatial_scales": onnx.AttributeProto.FLOATS,
    }
    values = attributes(node)
    assert values["output_size"] == [output_size, output_size]
    assert values["sampling_ratio"] == sampling_ratio and values["aligned"] == int(aligned)
    assert values["spatial_scales"] == [0.25, 0.125, 0.0625, 0.03125]
    assert {o.domain: o.version for o in model.opset_import}["streamseg"] == 1
    # The output type is stated for TensorRT's parser: float, [N, C, S, S] with C and S static.
    (output,) = model.graph.output
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = output.type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [4, output_size, output_size]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_ort_flavour_is_standard_roialign_per_level(config: tuple[int, int, bool]) -> None:
    output_size, sampling_ratio, aligned = config
    model = onnx.load_from_string(exported("ort", config))
    nodes = list(all_nodes(model.graph))
    assert all(n.domain in ("", "ai.onnx") for n in nodes)
    roi_aligns = [n for n in nodes if n.op_type == "RoiAlign"]
    assert len(roi_aligns) == 4
    for node, scale in zip(roi_aligns, [0.25, 0.125, 0.0625, 0.03125]):
        values = attributes(node)
        # Written out explicitly, never left to (disagreeing) defaults.
        mode = b"half_pixel" if aligned else b"output_half_pixel"
        assert values["coordinate_transformation_mode"] == mode
        assert values["sampling_ratio"] == sampling_ratio
        assert values["mode"] == b"avg"
        assert values["output_height"] == output_size and values["output_width"] == output_size
        assert values["spatial_scale"] == pytest.approx(scale)
    assert [n.input[0] for n in roi_aligns] == ["p2", "p3", "p4", "p5"]


def run_flavour(
    flavour: str, config: tuple[int, int, bool], rois: torch.Tensor, features: list[torch.Tensor]
) -> np.ndarray:
    session = ort_custom_op.inference_session(exported(flavour, config))
    feed = {name: t.numpy() for name, t in zip(INPUT_NAMES, [rois, *features])}
    (pooled,) = session.run(None, feed)
    return pooled


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("flavour", ["trt", "ort"])
def test_onnx_runtime_matches_torch(flavour: str, config: tuple[int, int, bool]) -> None:
    output_size, sampling_ratio, aligned = config
    features = make_features(channels=4, seed=21)
    # Other RoIs than at export (dynamic N), including N = 1 and all RoIs on one level.
    all_rois = make_rois(per_level=6, seed=22)
    for rois in (all_rois, all_rois[:1], all_rois[:6]):
        expected = multi_level_roi_align(
            rois, features, output_size=output_size, sampling_ratio=sampling_ratio, aligned=aligned
        )
        pooled = run_flavour(flavour, config, rois, features)
        assert pooled.shape == tuple(expected.shape)
        np.testing.assert_allclose(pooled, expected.numpy(), rtol=0, atol=ATOL)


def test_trt_flavour_needs_prepared_model_and_reports_it() -> None:
    """Without prepare_model the Python op cannot read the list attributes; the error names it."""
    options = ort_custom_op.session_options()
    with pytest.raises(Exception, match=ort_custom_op.LIST_ATTRIBUTES_MIRROR):
        ort.InferenceSession(exported("trt", CONFIGS[0]), options, providers=["CPUExecutionProvider"])
    prepared = ort_custom_op.prepare_model(exported("trt", CONFIGS[0]))
    (node,) = prepared.graph.node
    assert (node.domain, node.op_type) == ("streamseg", "MultiLevelRoIAlign")
    mirror = attributes(node)[ort_custom_op.LIST_ATTRIBUTES_MIRROR]
    assert mirror == b'{"output_size": [7, 7], "spatial_scales": [0.25, 0.125, 0.0625, 0.03125]}'
    # The original model is untouched.
    original = onnx.load_from_string(exported("trt", CONFIGS[0]))
    assert ort_custom_op.LIST_ATTRIBUTES_MIRROR not in attributes(original.graph.node[0])


def test_two_custom_nodes_with_different_attributes() -> None:
    """A Mask R-CNN graph has 7x7 and 14x14 poolers: each node keeps its own attributes."""

    class TwoPoolers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.box = MultiLevelRoIAlign(7, 2, False)
            self.mask = MultiLevelRoIAlign(14, 0, True)

        def forward(self, rois, p2, p3, p4, p5):
            return self.box(rois, p2, p3, p4, p5), self.mask(rois, p2, p3, p4, p5)

    model = TwoPoolers().eval()
    session = ort_custom_op.inference_session(export(model, "trt"))
    rois, features = make_rois(per_level=3, seed=5), make_features(channels=4, seed=6)
    outputs = session.run(None, {name: t.numpy() for name, t in zip(INPUT_NAMES, [rois, *features])})
    for pooled, expected in zip(outputs, model(rois, *features)):
        np.testing.assert_allclose(pooled, expected.numpy(), rtol=0, atol=ATOL)


def test_export_without_flavour_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"onnx_flavour\('trt'\).*onnx_flavour\('ort'\)"):
        torch.onnx.export(
            JustTheOp(7, 2, False).eval(),
            (make_rois(per_level=1), *make_features(channels=1)),
            io.BytesIO(),
            opset_version=17,
            dynamo=False,
        )


def test_flavour_context_is_scoped_and_has_no_effect_outside_export() -> None:
    rois, features = make_rois(per_level=1), make_features(channels=2)
    pool = MultiLevelRoIAlign(7, 2, False)
    eager = pool(rois, *features)
    assert current_onnx_flavour() is None
    with onnx_flavour("trt"):
        with onnx_flavour("ort"):
            assert current_onnx_flavour() == "ort"
        assert current_onnx_flavour() == "trt"
        assert torch.equal(pool(rois, *features), eager)
    assert current_onnx_flavour() is None
    with pytest.raises(ConfigError, match="unknown ONNX flavour 'tensorrt'"):
        with onnx_flavour("tensorrt"):
            pass
