"""Model-level entry points: quantize_dynamic, and static post-training quantization
(prepare -> calibrate -> convert, or quantize() doing all three)."""
import copy
from collections import namedtuple

from .. import nn
from . import observer as obs
from ._qtypes import qint8
from .modules import DynamicQuantizedLinear, DynamicQuantizedLSTM, QuantizedConv2d, QuantizedLinear

QConfig = namedtuple("QConfig", ["activation", "weight"])

default_qconfig = QConfig(activation=obs.default_observer, weight=obs.default_per_channel_weight_observer)
default_per_channel_qconfig = default_qconfig


def get_default_qconfig(backend="x86"):
    """Histogram-calibrated activations (quint8) and per-channel symmetric int8 weights."""
    return QConfig(activation=obs.default_histogram_observer, weight=obs.default_per_channel_weight_observer)


_DYNAMIC_MAPPING = {nn.Linear: DynamicQuantizedLinear, nn.LSTM: DynamicQuantizedLSTM}
_STATIC_MAPPING = {nn.Linear: QuantizedLinear, nn.Conv2d: QuantizedConv2d}


def _swap_children(model, replace):
    """Replace submodules (iteratively, depth first) where replace(module) returns a new module."""
    stack = [model]
    while stack:
        parent = stack.pop()
        for name, child in list(parent.named_children()):
            new = replace(child)
            if new is not None:
                setattr(parent, name, new)
            else:
                stack.append(child)
    return model


def quantize_dynamic(model, qconfig_spec=None, dtype=qint8, mapping=None, inplace=False):
    """Replace Linear/LSTM layers (or the classes in qconfig_spec) with int8-weight dynamic versions."""
    if dtype is not qint8:
        raise ValueError(f"quantize_dynamic supports dtype=disttorch.quantization.qint8 only, got {dtype}")
    mapping = mapping or _DYNAMIC_MAPPING
    classes = set(qconfig_spec) if qconfig_spec is not None else set(mapping)
    unknown = [c for c in classes if isinstance(c, type) and c not in mapping]
    if unknown:
        raise ValueError(f"quantize_dynamic cannot quantize {[c.__name__ for c in unknown]}; supported: "
                         f"{[c.__name__ for c in mapping]}")
    if not inplace:
        model = copy.deepcopy(model)

    def replace(child):
        cls = type(child)
        return mapping[cls].from_float(child) if cls in classes and cls in mapping else None
    if type(model) in classes and type(model) in mapping:
        return mapping[type(model)].from_float(model)
    return _swap_children(model, replace)


def _observe_input(module, args):
    module.activation_post_process(args[0])


def prepare(model, inplace=False, qconfig=None):
    """Attach input observers to every Linear/Conv2d that has a qconfig (model.qconfig is inherited)."""
    if not inplace:
        model = copy.deepcopy(model)
    stack = [(model, getattr(model, "qconfig", None) or qconfig)]
    found = 0
    while stack:
        module, inherited = stack.pop()
        config = getattr(module, "qconfig", None) or inherited
        if type(module) in _STATIC_MAPPING and config is not None:
            module.activation_post_process = config.activation()
            module._observer_handle = module.register_forward_pre_hook(_observe_input)
            found += 1
            continue
        stack.extend((child, config) for child in module.children())
    if not found:
        raise RuntimeError("prepare found no Linear or Conv2d layer with a qconfig; set model.qconfig = "
                           "disttorch.quantization.get_default_qconfig() first")
    return model


def convert(model, inplace=False):
    """Swap observed Linear/Conv2d layers for quantized ones using the calibrated input ranges."""
    if not inplace:
        model = copy.deepcopy(model)

    def replace(child):
        observer = getattr(child, "activation_post_process", None)
        if type(child) not in _STATIC_MAPPING or observer is None:
            return None
        scale, zero_point = observer.calculate_qparams()
        return _STATIC_MAPPING[type(child)].from_float(child, scale, zero_point, observer.dtype)
    return _swap_children(model, replace)


def quantize(model, run_fn, run_args=(), mapping=None, inplace=False):
    """prepare, run_fn(prepared_model, *run_args) for calibration, convert; the model is put in eval mode."""
    if mapping is not None:
        raise NotImplementedError("custom mappings are not supported for static quantization")
    prepared = prepare(model, inplace=inplace)
    prepared.eval()
    run_fn(prepared, *run_args)
    return convert(prepared, inplace=True)


def model_size_bytes(model):
    """Bytes of all parameters and buffers (what a checkpoint of the model stores)."""
    state = model.state_dict()
    return sum(t._data.nbytes for t in state.values() if t is not None)
