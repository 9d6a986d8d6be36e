"""DataParallel: one process, the batch split across device replicas run in threads."""
import threading

from ...core import backend
from ...core.device import as_device
from ...core.ops.shape import cat
from ...core.tensor import Tensor
from ..modules.module import Module


def _replicate_parameter(p, device):
    """A differentiable copy on `device`; gradients of the copy flow back into the original."""
    if p.device == device:
        return p.view_as(p) if p.requires_grad else p
    return p.to(device)


def replicate(module, devices):
    return [_copy_module(module, device, keep_buffers=(i == 0)) for i, device in enumerate(devices)]


def _copy_module(module, device, keep_buffers):
    copy = module.__class__.__new__(module.__class__)
    copy.__dict__ = module.__dict__.copy()
    copy.__dict__["_parameters"] = {
        name: None if p is None else _replicate_parameter(p, device) for name, p in module._parameters.items()}
    copy.__dict__["_buffers"] = {
        name: None if b is None else (b if keep_buffers and b.device == device else b.detach().to(device).clone())
        for name, b in module._buffers.items()}
    copy.__dict__["_modules"] = {
        name: None if child is None else _copy_module(child, device, keep_buffers)
        for name, child in module._modules.items()}
    return copy


def scatter(inputs, devices, dim):
    """Split each tensor argument along `dim` into one chunk per device; other values are shared."""
    def split(obj):
        if isinstance(obj, Tensor):
            chunks = obj.chunk(len(devices), dim)
            if len(chunks) < len(devices):
                raise ValueError(
                    f"DataParallel: the batch of size {obj.shape[dim]} along dim {dim} is smaller than the "
                    f"number of devices ({len(devices)}); use a larger batch or fewer device_ids")
            return [c.to(d) for c, d in zip(chunks, devices)]
        if isinstance(obj, (list, tuple)) and obj:
            parts = [split(o) for o in obj]
            return [type(obj)(p[i] for p in parts) for i in range(len(devices))]
        if isinstance(obj, dict) and obj:
            parts = {k: split(v) for k, v in obj.items()}
            return [{k: v[i] for k, v in parts.items()} for i in range(len(devices))]
        return [obj] * len(devices)
    return split(tuple(inputs))


def gather(outputs, device, dim):
    first = outputs[0]
    if isinstance(first, Tensor):
        return cat([o.to(device) for o in outputs], dim)
    if isinstance(first, (list, tuple)):
        return type(first)(gather([o[i] for o in outputs], device, dim) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: gather([o[k] for o in outputs], device, dim) for k in first}
    return first


def parallel_apply(replicas, inputs, kwargs_list):
    results = [None] * len(replicas)
    errors = [None] * len(replicas)

    def run(i):
        try:
            results[i] = replicas[i](*inputs[i], **kwargs_list[i])
        except Exception as err:  # re-raised in the caller's thread below
            errors[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, len(replicas))]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    for i, err in enumerate(errors):
        if err is not None:
            raise RuntimeError(f"Caught {type(err).__name__} in replica {i}: {err}") from err
    return results


class DataParallel(Module):
    """Split each batch along `dim` over `device_ids`, run one replica per device in its own thread, and
    gather the outputs on `output_device`; gradients flow back into `module`'s own parameters."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if device_ids is None:
            count = backend.cuda_device_count()
            device_ids = list(range(count)) if count else ["cpu"]
        self.module = module
        self.device_ids = [as_device(d) for d in device_ids]
        self.output_device = as_device(output_device) if output_device is not None else self.device_ids[0]
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        devices = self.device_ids
        if len(devices) == 1:
            moved = scatter(inputs, devices, self.dim)[0] if inputs else ()
            return self.module(*moved, **kwargs)
        scattered = scatter(inputs, devices, self.dim)
        kwargs_list = [parts[0] for parts in scatter((kwargs,), devices, self.dim)] if kwargs else [{}] * len(devices)
        replicas = replicate(self.module, devices)
        outputs = parallel_apply(replicas, scattered, kwargs_list)
        return gather(outputs, self.output_device, self.dim)
