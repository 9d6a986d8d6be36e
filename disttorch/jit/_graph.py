"""The static program a trace produces: values, op nodes, constants, and how to run it again.

A value is an integer id. Inputs and constants are values; every node reads values (through its
encoded arguments) and defines new ones. Arguments are stored in a JSON-safe encoding so a program
can be saved without pickle:

    {"v": id}                    a tensor value
    {"a": id}                    the raw array of a value (ops that take arrays inside an index)
    {"dim": k}                   size k of the node's first argument at run time (batch-size freedom)
    {"tuple": [...]}, {"list": [...]}, {"slice": [start, stop, step]}, {"ellipsis": 0}
    {"np_dtype": "float32"}, {"dtype": "float32"}, {"device": "cpu"}, {"scalar": ["float32", 1.5]}
    plain None / bool / int / float / str
"""
import importlib

import numpy as np

from ..core import dtype as dtypes
from ..core.autograd import Function
from ..core.device import device as Device
from ..core.tensor import Tensor

# Ops are referenced by "module.ClassName" and resolved on load only inside these packages, so a
# saved program can name nothing but disttorch's own ops.
ALLOWED_OP_MODULES = ("disttorch.core.ops.", "disttorch.nn.functional.", "disttorch.nn.modules.",
                      "disttorch.quantization.", "disttorch.jit.")


def op_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_op(name):
    module_name, _, class_name = name.rpartition(".")
    if not any(module_name.startswith(prefix) or module_name + "." == prefix for prefix in ALLOWED_OP_MODULES):
        raise RuntimeError(
            f"traced program references op '{name}', which is outside disttorch's op modules "
            f"{ALLOWED_OP_MODULES}; refusing to load it (the file may be corrupt or not from disttorch.jit)")
    if not class_name.isidentifier():
        raise RuntimeError(f"traced program references op '{name}', which is not a valid class name")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Function)):
        raise RuntimeError(f"traced program references op '{name}', which is not a disttorch Function")
    return cls


class WriteThroughView(Function):
    """Replay form of an in-place edit made through a view: the base with the view's elements replaced.

    Eagerly the edit lands in shared memory and the graph only records ViewWriteBack; a replayed
    program has no shared memory, so it must do the scatter itself. `positions` are flat indices into
    the base, shaped like the view.
    """

    @staticmethod
    def forward(ctx, root, view, positions):
        out = root.copy()
        out.reshape(-1)[positions] = view
        ctx.positions = positions
        return out

    @staticmethod
    def backward(ctx, g):
        need_root, need_view, _ = ctx.needs_input_grad
        g_view = g.reshape(-1)[ctx.positions] if need_view else None
        g_root = None
        if need_root:
            g_root = g.copy()
            g_root.reshape(-1)[ctx.positions] = 0
        return g_root, g_view, None


class Node:
    __slots__ = ("op", "args", "outputs", "cls")

    def __init__(self, op, args, outputs, cls=None):
        self.op = op
        self.args = args
        self.outputs = outputs
        self.cls = cls if cls is not None else resolve_op(op)


class Program:
    """inputs: value ids; constants: value id -> (name, ndarray); nodes; output: encoded structure."""

    def __init__(self, inputs, input_meta, constants, nodes, output):
        self.inputs = inputs
        self.input_meta = input_meta  # per input: (ndim, dtype name)
        self.constants = constants
        self.nodes = nodes
        self.output = output

    def prune(self):
        """Drop nodes and constants the outputs do not depend on (e.g. BatchNorm running-stat updates)."""
        needed = set(_value_ids(self.output))
        kept = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.outputs):
                kept.append(node)
                needed.update(_value_ids(node.args))
        self.nodes = kept[::-1]
        self.constants = {vid: c for vid, c in self.constants.items() if vid in needed}

    def run(self, inputs, constant_tensors):
        env = dict(constant_tensors)
        for vid, tensor in zip(self.inputs, inputs):
            env[vid] = tensor
        for node in self.nodes:
            first = decode(node.args[0], env, None) if node.args else None
            anchor = first if isinstance(first, Tensor) else None
            args = [first] + [decode(a, env, anchor) for a in node.args[1:]] if node.args else []
            result = node.cls.apply(*args)
            if isinstance(result, tuple):
                for vid, r in zip(node.outputs, result):
                    env[vid] = r
            else:
                env[node.outputs[0]] = result
        return decode(self.output, env, None)

    def describe(self):
        names = {vid: name for vid, (name, _) in self.constants.items()}
        names.update({vid: f"input{i}" for i, vid in enumerate(self.inputs)})
        lines = [f"graph({', '.join(names[v] for v in self.inputs)}):"]
        for node in self.nodes:
            outs = ", ".join(f"%{o}" for o in node.outputs)
            args = ", ".join(_describe_arg(a, names) for a in node.args)
            lines.append(f"  {outs} = {node.op}({args})")
        lines.append(f"  return {_describe_arg(self.output, names)}")
        return "\n".join(lines)


def _describe_arg(arg, names):
    if isinstance(arg, dict):
        if "v" in arg or "a" in arg:
            vid = arg.get("v", arg.get("a"))
            return names.get(vid, f"%{vid}")
        if "tuple" in arg or "list" in arg:
            items = arg.get("tuple", arg.get("list"))
            return "(" + ", ".join(_describe_arg(a, names) for a in items) + ")"
        if "dim" in arg:
            return f"size({arg['dim']})"
        return str(next(iter(arg.values())))
    return repr(arg)


def _value_ids(arg):
    stack = [arg]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "v" in item:
                yield item["v"]
            elif "a" in item:
                yield item["a"]
            else:
                stack.extend(v for v in item.values() if isinstance(v, (list, dict)))
        elif isinstance(item, list):
            stack.extend(item)


def decode(arg, env, first):
    if isinstance(arg, dict):
        if "v" in arg:
            return env[arg["v"]]
        if "a" in arg:
            return env[arg["a"]]._data
        if "tuple" in arg:
            return tuple(decode(a, env, first) for a in arg["tuple"])
        if "list" in arg:
            return [decode(a, env, first) for a in arg["list"]]
        if "dim" in arg:
            return first._data.shape[arg["dim"]]
        if "slice" in arg:
            return slice(*arg["slice"])
        if "ellipsis" in arg:
            return Ellipsis
        if "np_dtype" in arg:
            return np.dtype(arg["np_dtype"])
        if "dtype" in arg:
            return dtypes._NAMES[arg["dtype"]]
        if "device" in arg:
            return Device(arg["device"])
        if "scalar" in arg:
            kind, value = arg["scalar"]
            return np.dtype(kind).type(value)
        raise RuntimeError(f"traced program holds an argument it cannot decode: {arg}")
    return arg
