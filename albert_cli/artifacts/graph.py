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
    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in input_names]

    @tf.function(input_signature=spec)
    def ids_to_output(token_ids, segment_ids, padding_mask):
        out = signature(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask)
        return {key: tf.identity(out[key], name=key)}

    concrete = ids_to_output.get_concrete_function()
    frozen, graph_def = convert_variables_to_constants_v2_as_graph(concrete, aggressive_inlining=True)
    expand_new_axis_slices(graph_def)
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    return wrapped.prune([graph.get_tensor_by_name(n) for n in inputs], [graph.get_tensor_by_name(n) for n in outputs])
