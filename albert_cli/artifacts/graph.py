"""The SavedModel's ids -> output function as one frozen graph that the TFLite converter accepts.

TensorFlow is imported by the callers (they pass ``tf``) or inside the functions: nothing loads it at import.
"""

from __future__ import annotations

import numpy as np

from albert_cli.errors import ModelError


def _expand_dims_nodes(node, axes: list[int]) -> list:
    """ExpandDims nodes (and their axis constants) that do what StridedSlice `node` does with `axes` new."""
    from tensorflow.core.framework import node_def_pb2, types_pb2
    from tensorflow.python.framework import tensor_util

    nodes = []
    previous = node.input[0]
    controls = [i for i in node.input if i.startswith("^")]
    for k, axis in enumerate(axes):
        const = node_def_pb2.NodeDef(name=f"{node.name}/expand_axis_{k}", op="Const")
        const.attr["dtype"].type = types_pb2.DT_INT32
        const.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.int32(axis)))
        expand = node_def_pb2.NodeDef(op="ExpandDims", device=node.device)
        expand.name = node.name if k == len(axes) - 1 else f"{node.name}/expand_{k}"
        expand.input.extend([previous, const.name] + (controls if k == 0 else []))
        expand.attr["T"].CopyFrom(node.attr["T"])
        expand.attr["Tdim"].type = types_pb2.DT_INT32
        nodes += [const, expand]
        previous = expand.name
    return nodes


def expand_new_axis_slices(graph_def) -> int:
    """Rewrite ``x[:, None, None, :]`` (StridedSlice with ``new_axis_mask``) as ExpandDims.

    The TFLite converter cannot legalize such a slice when the input has two
    dynamic dimensions (it would need a reshape to ``[?, 1, 1, ?]``), and the
    attention mask of every layer is built that way. Only slices that take
    every element of the existing dimensions (begin/end masks set, stride 1,
    no ellipsis or shrink) are rewritten; they are exactly ExpandDims.
    Returns the number of rewritten nodes.
    """
    from tensorflow.python.framework import tensor_util

    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    rewritten = 0
    nodes = []
    for node in graph_def.node:
        new_axis = node.attr["new_axis_mask"].i if node.op == "StridedSlice" else 0
        strides_node = consts.get(node.input[3].split(":")[0]) if new_axis and len(node.input) >= 4 else None
        if strides_node is None:
            nodes.append(node)
            continue
        strides = tensor_util.MakeNdarray(strides_node.attr["value"].tensor).reshape(-1)
        begin, end = node.attr["begin_mask"].i, node.attr["end_mask"].i
        full = all((new_axis >> j) & 1 or ((begin >> j) & 1 and (end >> j) & 1) for j in range(len(strides)))
        plain = node.attr["ellipsis_mask"].i == 0 and node.attr["shrink_axis_mask"].i == 0
        if not (full and plain and (strides == 1).all()):
            nodes.append(node)
            continue
        nodes += _expand_dims_nodes(node, [j for j in range(len(strides)) if (new_axis >> j) & 1])
        rewritten += 1
    del graph_def.node[:]
    graph_def.node.extend(nodes)
    return rewritten


def ids_function(tf, loaded, key: str, input_names, where):
    """A concrete function: the ids -> `key` output of the SavedModel's ``classify_ids``, with constants.

    Args:
        tf: the tensorflow module.
        loaded: the loaded SavedModel.
        key: its output to keep (``probabilities`` or ``value``).
        input_names: the int32 ``[batch, seq]`` inputs, in order.
        where: the model's name in error messages.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    try:
        signature = loaded.signatures["classify_ids"]
    except KeyError:
        raise ModelError(f"{where}: the SavedModel has no classify_ids signature (re-run finetune)") from None
    if key not in signature.structured_outputs:
        raise ModelError(f"{where}: the classify_ids signature has no '{key}' output")
    rank = signature.structured_input_signature[1][input_names[0]].shape.rank  # 3: a windowed model's [B, W, L]
    spec = [tf.TensorSpec([None] * rank, tf.int32, name=name) for name in input_names]

    @tf.function(input_signature=spec)
    def ids_to_output(token_ids, segment_ids, padding_mask):
        out = signature(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask)
        return {key: tf.identity(out[key], name=key)}

    concrete = ids_to_output.get_concrete_function()
    frozen, graph_def = convert_variables_to_constants_v2_as_graph(concrete, aggressive_inlining=True)
    expand_new_axis_slices(graph_def)
    integer_gather_tables(graph_def)  # exact in every mode; quantization would break them
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    return wrapped.prune([graph.get_tensor_by_name(n) for n in inputs], [graph.get_tensor_by_name(n) for n in outputs])


def _const_source(nodes: dict, name: str):
    """The Const node behind input `name` (through Identity nodes), or None."""
    node = nodes.get(name.split(":")[0].lstrip("^"))
    while node is not None and node.op == "Identity":
        node = nodes.get(node.input[0].split(":")[0])
    return node if node is not None and node.op == "Const" else None


def _integer_gather(gather, table) -> list:
    """`gather` rewritten to read the int32 `table` and cast its result to float32 (under the same name)."""
    from tensorflow.core.framework import node_def_pb2, types_pb2
    from tensorflow.python.framework import tensor_util

    const = node_def_pb2.NodeDef(name=f"{gather.name}/int_table", op="Const")
    const.attr["dtype"].type = types_pb2.DT_INT32
    const.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(table))
    inner = node_def_pb2.NodeDef()
    inner.CopyFrom(gather)
    inner.name = f"{gather.name}/int_gather"
    inner.input[0] = const.name
    inner.attr["Tparams"].type = types_pb2.DT_INT32
    cast = node_def_pb2.NodeDef(name=gather.name, op="Cast", device=gather.device)
    cast.input.append(inner.name)
    cast.attr["SrcT"].type, cast.attr["DstT"].type = types_pb2.DT_INT32, types_pb2.DT_FLOAT
    cast.attr["Truncate"].b = False
    return [const, inner, cast]


def integer_gather_tables(graph_def) -> list[str]:
    """Gather float tables of whole numbers as int32, so that quantization leaves them exact.

    Dynamic-range quantization stores every large float constant in int8 with one scale per tensor. For the
    bag of n-grams' word `boundaries` (0 to 3 stored as floats) that turns 1.0 into 0.99, which the cast to
    int then makes 0: every word boundary is lost (bench/README.md, "Export"). Integer constants are never
    quantized, and the int32 copy is exact. Returns the names of the rewritten gathers.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import tensor_util

    nodes = {n.name: n for n in graph_def.node}
    out, done = [], []
    for node in graph_def.node:
        const = _const_source(nodes, node.input[0]) if node.op == "GatherV2" else None
        table = None
        if const is not None and const.attr["dtype"].type == types_pb2.DT_FLOAT:
            table = tensor_util.MakeNdarray(const.attr["value"].tensor)
        if table is None or not (np.all(table == np.round(table)) and np.abs(table).max(initial=0) < 2**31):
            out.append(node)
            continue
        out += _integer_gather(node, table.astype(np.int32))
        done.append(node.name)
    del graph_def.node[:]
    graph_def.node.extend(out)
    return done
