"""disttorch.onnx.export: write a model as an ONNX graph (no dependency on the `onnx` package).

The model runs once under the jit tracer. Most layers are mapped from the ops they record (linear,
conv2d, pooling, elementwise, reshape, softmax, ...); layers whose ONNX form is a single operator but
whose disttorch form is several primitive ops (BatchNorm, LSTM, GELU, LeakyReLU, Dropout) are
recorded as one module node each through forward hooks and mapped as a whole.
"""
import numpy as np

from ..core.tensor import Tensor
from ..jit._tracer import Recorder, recording
from . import _proto
from ._convert import MODULE_CONVERTERS, OP_CONVERTERS, Builder

__all__ = ["export"]


class _ModuleCall:
    """A leaf module recorded as one node: its input value ids and output value ids."""

    def __init__(self, module, args, inputs, outputs):
        self.module = module
        self.args = args
        self.inputs = inputs
        self.outputs = outputs
        self.training = module.training  # the mode it ran in; export restores modes before converting


def _flat_tensors(obj):
    stack, flat = [obj], []
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        elif isinstance(item, Tensor):
            flat.append(item)
        elif item is not None:
            raise TypeError(f"ONNX export: model outputs must be Tensors or tuples of Tensors, got "
                            f"{type(item).__name__}")
    return flat


def _install_module_hooks(model, recorder):
    handles = []

    def pre_hook(module, args):
        if recorder.suspended == 0:
            module._onnx_inputs = [recorder.value_of(t) for t in _flat_tensors(args)]
        recorder.suspended += 1

    def post_hook(module, args, output):
        recorder.suspended -= 1
        if recorder.suspended == 0:
            outputs = [recorder.new_value(t, derived=True) for t in _flat_tensors(output)]
            recorder.nodes.append(_ModuleCall(module, args, module.__dict__.pop("_onnx_inputs"), outputs))

    for module in model.modules():
        if type(module).__name__ in MODULE_CONVERTERS:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
    return handles


def _dynamic_dims(dynamic_axes, name, rank):
    axes = (dynamic_axes or {}).get(name)
    if axes is None:
        return {}
    if isinstance(axes, dict):
        return {int(a) % max(rank, 1): str(n) for a, n in axes.items()}
    return {int(a) % max(rank, 1): f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(axes)}


def export(model, args, f, export_params=True, verbose=False, training=None, input_names=None,
           output_names=None, opset_version=17, dynamic_axes=None, do_constant_folding=True, **unused):
    """Trace `model(*args)` and write the ONNX model to `f` (a path or a binary file object).

    The model is exported in eval mode (BatchNorm with running statistics, Dropout as identity) unless
    training=True, which keeps the current modes and refuses layers whose training behaviour ONNX
    inference cannot express.
    """
    if opset_version is None:
        opset_version = 17
    if not 13 <= opset_version <= 21:
        raise ValueError(f"opset_version {opset_version} is not supported; use an opset between 13 and 21")
    inputs = (args,) if isinstance(args, Tensor) else tuple(args)
    if not all(isinstance(x, Tensor) for x in inputs):
        raise TypeError("ONNX export: args must be a Tensor or a tuple of Tensors")
    is_module = hasattr(model, "modules")
    named = list(model.named_parameters()) + list(model.named_buffers()) if is_module else []
    recorder = Recorder(named)
    handles = _install_module_hooks(model, recorder) if is_module else []
    # Like torch.onnx.export's default TrainingMode.EVAL: export the inference graph, then restore modes.
    modes = [(m, m.training) for m in model.modules()] if is_module else []
    if is_module and not training:
        model.eval()
    try:
        with recording(recorder):
            placeholders = [Tensor._wrap(x._data) for x in inputs]
            for p in placeholders:
                recorder.add_input(p)
            output = model(*placeholders)
            output_tensors = _flat_tensors(output)
            output_ids = [recorder.value_of(t) for t in output_tensors]
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode

    input_names = list(input_names or [])
    input_names += [f"input.{i}" for i in range(len(input_names), len(inputs))]
    output_names = list(output_names or [])
    output_names += [f"output.{i}" for i in range(len(output_names), len(output_ids))]

    builder = Builder(recorder, opset_version)
    for vid, name in zip(recorder.inputs, input_names):
        builder.names[vid] = name
    for node in recorder.nodes:
        if isinstance(node, _ModuleCall):
            MODULE_CONVERTERS[type(node.module).__name__](builder, node)
        elif node.op in OP_CONVERTERS:
            OP_CONVERTERS[node.op](builder, node)
        else:
            raise NotImplementedError(
                f"ONNX export: op {node.op} has no ONNX mapping (supported ops: "
                f"{', '.join(sorted(o.rsplit('.', 1)[1] for o in OP_CONVERTERS))}; supported layers: "
                f"{', '.join(sorted(MODULE_CONVERTERS))})")
    for vid, name in zip(output_ids, output_names):
        builder.add("Identity", [builder.name(vid)], [name])

    graph_inputs = []
    for vid, name, x in zip(recorder.inputs, input_names, inputs):
        dims = _dynamic_dims(dynamic_axes, name, x.dim())
        shape = [dims.get(i, s) for i, s in enumerate(x.shape)]
        graph_inputs.append(_proto.value_info(name, x._data.dtype, shape))
    graph_outputs = []
    for name, t in zip(output_names, output_tensors):
        dims = _dynamic_dims(dynamic_axes, name, t.dim())
        shape = [dims.get(i, s) for i, s in enumerate(t.shape)]
        graph_outputs.append(_proto.value_info(name, t._data.dtype, shape))
    graph = _proto.graph(type(model).__name__, builder.nodes, builder.initializer_bytes(), graph_inputs,
                         graph_outputs)
    data = _proto.model(graph, opset_version)
    if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
        with open(f, "wb") as handle:
            handle.write(data)
    else:
        f.write(data)


def _host_array(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)
