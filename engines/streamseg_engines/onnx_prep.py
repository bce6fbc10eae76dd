"""ONNX preparation before TensorRT parses a graph (pure ``onnx``, no TensorRT).

- :func:`prepare_plugin_nodes`: give every ``streamseg::MultiLevelRoIAlign`` node the
  two attributes TensorRT's ONNX parser reads for a ``tensorrt.plugin`` plugin,
  ``plugin_namespace = "streamseg"`` (which registry namespace) and ``aot = 1``
  (use the ahead-of-time kernel, so the engine runs without Python).
- :func:`cast_to_fp16`: the FP16 recipe for strongly typed networks (TensorRT 11.x has
  no ``BuilderFlag.FP16``): the compute-heavy part of the graph (convolutions, matrix
  products and the element-wise ops that only see their outputs, and the RoIAlign
  plugin when its features are FP16) runs in FP16; box decoding, scores, NMS and
  everything integer stays FP32; graph inputs and outputs keep their types.
- :func:`transplant_qdq`: copy the Q/DQ (QuantizeLinear / DequantizeLinear) nodes of
  a quantized graph onto the same-named nodes of another graph. INT8 calibration
  needs ONNX Runtime to run the graph, which cannot run our custom node, so the INT8
  recipe calibrates the ort flavour (standard RoiAlign ops) and transplants its Q/DQ
  onto the trt flavour (see :mod:`streamseg_engines.precision`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from streamseg.errors import EngineError

__all__ = [
    "FP16_ANCHOR_OPS",
    "FP16_FOLLOW_OPS",
    "cast_to_fp16",
    "metadata",
    "plugin_nodes",
    "prepare_plugin_nodes",
    "transplant_qdq",
]

_PLUGIN_DOMAIN = "streamseg"
_PLUGIN_OP = "MultiLevelRoIAlign"

#: Ops always run in FP16 by :func:`cast_to_fp16`: where the FLOPs are.
FP16_ANCHOR_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: Ops run in FP16 when every floating-point activation they read is FP16 already.
FP16_FOLLOW_OPS = frozenset(
    {"Relu", "Add", "MaxPool", "Resize", "Flatten", "Reshape", "Concat", "Transpose", "Identity", "Sigmoid"}
)
#: Input indices that carry data (the others, e.g. Resize scales, keep their type).
_DATA_INPUTS = {"Resize": (0,), "Reshape": (0,)}
#: The plugin's feature inputs (index 0 is the rois, always FP32).
_PLUGIN_FEATURES = (1, 2, 3, 4)


def metadata(model: Any) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (``streamseg.model``, ``streamseg.size``, ...)."""
    return {p.key: p.value for p in model.metadata_props}


def plugin_nodes(model: Any) -> list[Any]:
    """The ``streamseg::MultiLevelRoIAlign`` nodes of the main graph."""
    return [n for n in model.graph.node if n.op_type == _PLUGIN_OP and n.domain in (_PLUGIN_DOMAIN, "")]


def prepare_plugin_nodes(model: Any, *, aot: bool = True) -> int:
    """Add ``plugin_namespace`` and ``aot`` to every plugin node, in place.

    Also adds an opset import for the ``streamseg`` domain if it is missing.

    Args:
        model: ``onnx.ModelProto`` (modified).
        aot: value of the ``aot`` attribute (True: the kernel is compiled into the engine).

    Returns:
        The number of plugin nodes.
    """
    from onnx import helper

    nodes = plugin_nodes(model)
    for node in nodes:
        keep = [a for a in node.attribute if a.name not in ("plugin_namespace", "aot")]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(helper.make_attribute("plugin_namespace", _PLUGIN_DOMAIN))
        node.attribute.append(helper.make_attribute("aot", int(bool(aot))))
        node.domain = _PLUGIN_DOMAIN
    if nodes and not any(o.domain == _PLUGIN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_PLUGIN_DOMAIN, 1))
    return len(nodes)


# --------------------------------------------------------------------------------------
# FP16
# --------------------------------------------------------------------------------------


def _data_indices(node: Any) -> tuple[int, ...]:
    if node.op_type == _PLUGIN_OP:
        return _PLUGIN_FEATURES
    return _DATA_INPUTS.get(node.op_type, tuple(range(len(node.input))))


def _subgraph_inputs(graph: Any) -> set[str]:
    """Names read inside subgraphs (If / Loop bodies): they must stay FP32."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                for inner in sub.node:
                    names.update(inner.input)
                names |= _subgraph_inputs(sub)
    return names


def cast_to_fp16(model: Any, *, keep_fp32_nodes: Iterable[str] = ()) -> dict[str, int]:
    """Convert the compute-heavy part of a float32 graph to FP16, in place.

    Rules, in one topological pass: a node runs in FP16 if it is a
    :data:`FP16_ANCHOR_OPS` op, or a :data:`FP16_FOLLOW_OPS` op (or the RoIAlign
    plugin, for its feature inputs) whose floating-point activation inputs are all
    FP16 already; never if named in ``keep_fp32_nodes`` or if a subgraph reads its
    output. Float32 initializers read by FP16 nodes are stored as FP16 copies; other
    precision changes get a ``Cast`` node (one per tensor and direction). Graph
    inputs and outputs keep their names and types.

    Args:
        model: float32 ``onnx.ModelProto`` (modified).
        keep_fp32_nodes: node names to keep in FP32.

    Returns:
        Counts: ``{"fp16_nodes", "fp32_nodes", "casts", "initializers"}``.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    const_float = {
        n.output[0]
        for n in graph.node
        if n.op_type == "Constant"
        and n.attribute
        and n.attribute[0].name == "value"
        and n.attribute[0].t.data_type == TensorProto.FLOAT
    }
    keep = set(keep_fp32_nodes)
    forced = _subgraph_inputs(graph)
    fp16_tensors: set[str] = set()
    fp16_nodes: set[int] = set()

    for i, node in enumerate(graph.node):
        if node.name in keep or any(o in forced for o in node.output):
            continue
        data = [node.input[j] for j in _data_indices(node) if j < len(node.input) and node.input[j]]
        acts = [t for t in data if t not in inits and t not in const_float]
        if node.op_type in FP16_ANCHOR_OPS:
            ok = True
        elif node.op_type in FP16_FOLLOW_OPS or node.op_type == _PLUGIN_OP:
            ok = bool(acts) and all(t in fp16_tensors for t in acts)
            # An integer or non-float32 initializer (e.g. Add of int64 shapes) rules the node out.
            ok = ok and all(inits[t].data_type == TensorProto.FLOAT for t in data if t in inits)
        else:
            ok = False
        if ok:
            fp16_nodes.add(i)
            fp16_tensors.add(node.output[0])

    outputs = {o.name for o in graph.output}
    renamed = {t: f"{t}__fp16" for t in fp16_tensors if t in outputs}
    converted: dict[str, str] = {}
    to16: dict[str, str] = {}
    to32: dict[str, str] = {}
    new_nodes: list[Any] = []
    new_inits: list[Any] = []

    def cast(name: str, to: int, table: dict[str, str], out: str | None = None) -> str:
        if name not in table:
            suffix = "__to_fp16" if to == TensorProto.FLOAT16 else "__to_fp32"
            table[name] = out or f"{name}{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [table[name]], name=f"{table[name]}_cast", to=to))
        return table[name]

    for i, node in enumerate(graph.node):
        half = i in fp16_nodes
        data = set(_data_indices(node)) if half else set()
        for j, name in enumerate(node.input):
            if not name:
                continue
            src = renamed.get(name, name)
            if half and j in data:
                if name in fp16_tensors:
                    node.input[j] = src
                elif name in inits and inits[name].data_type == TensorProto.FLOAT:
                    if name not in converted:
                        converted[name] = f"{name}__fp16"
                        array = numpy_helper.to_array(inits[name]).astype(np.float16)
                        new_inits.append(numpy_helper.from_array(array, converted[name]))
                    node.input[j] = converted[name]
                else:
                    node.input[j] = cast(name, TensorProto.FLOAT16, to16)
            elif name in fp16_tensors:
                node.input[j] = cast(src, TensorProto.FLOAT, to32)
        if half:
            node.output[0] = renamed.get(node.output[0], node.output[0])
        new_nodes.append(node)
    for original, half_name in renamed.items():
        new_nodes.append(helper.make_node("Cast", [half_name], [original], name=f"{original}_to_fp32", to=TensorProto.FLOAT))

    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    # Drop float32 initializers only FP16 nodes read, and value_info of retyped tensors.
    used = {name for n in graph.node for name in n.input} | _subgraph_inputs(graph) | outputs
    stale = [t for t in graph.initializer if t.name in converted and t.name not in used]
    for t in stale:
        graph.initializer.remove(t)
    retyped = fp16_tensors | set(renamed.values())
    for vi in [v for v in graph.value_info if v.name in retyped]:
        graph.value_info.remove(vi)
    return {
        "fp16_nodes": len(fp16_nodes),
        "fp32_nodes": len(graph.node) - len(fp16_nodes) - len(to16) - len(to32) - len(renamed),
        "casts": len(to16) + len(to32) + len(renamed),
        "initializers": len(converted),
    }


# --------------------------------------------------------------------------------------
# Q/DQ transplant (INT8)
# --------------------------------------------------------------------------------------

_QDQ = ("QuantizeLinear", "DequantizeLinear")


def transplant_qdq(quantized: Any, target: Any, *, ops: Iterable[str] = ("Conv", "ConvTranspose", "Gemm", "MatMul")) -> dict[str, Any]:
    """Copy the Q/DQ nodes in front of ``ops`` from ``quantized`` onto ``target``, in place.

    For each node of ``quantized`` whose type is in ``ops`` and whose input is the
    output of a ``DequantizeLinear`` (activations: ``x -> QuantizeLinear ->
    DequantizeLinear``; weights: an int8 initializer ``-> DequantizeLinear``), the
    node of the same name and type in ``target`` gets the same chain, with the
    scales, zero points and quantized weights copied (float16 scales as float32: the
    target is an fp32 graph, and a ``DequantizeLinear`` outputs its scale's type). Names
    are matched, so both graphs must come from one export (the trt and ort flavours do:
    they differ only in the RoIAlign nodes).

    Args:
        quantized: ``onnx.ModelProto`` with Q/DQ nodes (e.g. from ModelOpt).
        target: ``onnx.ModelProto`` to quantize (modified).
        ops: node types whose inputs are transplanted.

    Returns:
        ``{"nodes": quantized nodes transplanted, "chains": Q/DQ chains copied,
        "missing": [names of quantized nodes not found in target]}``.

    Raises:
        EngineError: ``quantized`` has no Q/DQ node in front of any of ``ops``.
    """
    from onnx import numpy_helper

    ops = set(ops)
    q_graph, t_graph = quantized.graph, target.graph
    producer = {o: n for n in q_graph.node for o in n.output}
    q_inits = {t.name: t for t in q_graph.initializer}
    t_nodes = {n.name: n for n in t_graph.node if n.name}
    t_inits = {t.name: t for t in t_graph.initializer}
    copied_inits: set[str] = set()
    new_nodes_before: dict[int, list[Any]] = defaultdict(list)
    t_index = {id(n): i for i, n in enumerate(t_graph.node)}
    result: dict[str, Any] = {"nodes": 0, "chains": 0, "missing": []}
    chains: dict[str, str] = {}
    seen_any = False

    def copy_init(name: str, new_name: str) -> str:
        if new_name not in copied_inits and new_name not in t_inits:
            array = numpy_helper.to_array(q_inits[name])
            if array.dtype == np.float16:  # fp16 scales (ModelOpt's fp16 mode) would make DQ feed fp16 to fp32 nodes
                array = array.astype(np.float32)
            t_graph.initializer.append(numpy_helper.from_array(array, new_name))
            copied_inits.add(new_name)
        return new_name

    for node in q_graph.node:
        if node.op_type not in ops:
            continue
        dq_inputs = [
            (j, producer[name]) for j, name in enumerate(node.input)
            if name in producer and producer[name].op_type == "DequantizeLinear"
        ]
        if not dq_inputs:
            continue
        seen_any = True
        twin = t_nodes.get(node.name)
        if twin is None or twin.op_type != node.op_type:
            result["missing"].append(node.name)
            continue
        for j, dq in dq_inputs:
            if j >= len(twin.input):
                continue
            quant = producer.get(dq.input[0])
            tag = f"{twin.name}__in{j}"
            dq_ins = [copy_init(x, f"{tag}__{k}") if x in q_inits else x for k, x in enumerate(dq.input)]
            if quant is not None and quant.op_type == "QuantizeLinear":
                source = twin.input[j]  # the activation, under its name in target
                chain_key = f"{source}|{','.join(dq.input[1:])}"
                if chain_key in chains:
                    twin.input[j] = chains[chain_key]
                    continue
                q_ins = [source] + [copy_init(x, f"{tag}__q{k}") for k, x in enumerate(quant.input[1:], 1) if x in q_inits]
                q_out, dq_out = f"{tag}__q", f"{tag}__dq"
                qn = _clone(quant, q_ins, [q_out], f"{tag}_QuantizeLinear")
                dn = _clone(dq, [q_out] + dq_ins[1:], [dq_out], f"{tag}_DequantizeLinear")
                new_nodes_before[t_index[id(twin)]].extend([qn, dn])
                chains[chain_key] = dq_out
            else:
                dq_out = f"{tag}__dq"
                new_nodes_before[t_index[id(twin)]].append(_clone(dq, dq_ins, [dq_out], f"{tag}_DequantizeLinear"))
            twin.input[j] = dq_out
            result["chains"] += 1
        result["nodes"] += 1
    if not seen_any:
        raise EngineError("the quantized graph has no QuantizeLinear/DequantizeLinear in front of "
                          f"{', '.join(sorted(ops))} nodes: nothing to transplant")
    ordered = []
    for i, node in enumerate(t_graph.node):
        ordered.extend(new_nodes_before.get(i, []))
        ordered.append(node)
    del t_graph.node[:]
    t_graph.node.extend(ordered)
    # Float weights now read by nobody (replaced by their int8 copies) are dropped.
    used = {name for n in t_graph.node for name in n.input} | _subgraph_inputs(t_graph)
    for t in [t for t in t_graph.initializer if t.name not in used and t.name in t_inits]:
        t_graph.initializer.remove(t)
    for opset in quantized.opset_import:
        if opset.domain in ("", "ai.onnx"):
            for mine in target.opset_import:
                if mine.domain in ("", "ai.onnx") and mine.version < opset.version:
                    mine.version = opset.version
    return result


def _clone(node: Any, inputs: list[str], outputs: list[str], name: str) -> Any:
    from onnx import helper

    out = helper.make_node(node.op_type, inputs, outputs, name=name, domain=node.domain)
    out.attribute.extend(node.attribute)
    return out


def calibration_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of calibration arrays (names, shapes, dtypes and bytes), for the engine key."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()
