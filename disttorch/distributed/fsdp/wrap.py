"""torch.distributed.fsdp.wrap: auto-wrap policies, deciding which submodules become FSDP units.

A policy is called as ``policy(module=m, recurse=r, nonwrapped_numel=n)``: with ``recurse=True``
it says whether to look inside ``m`` for units, with ``recurse=False`` whether ``m`` itself
becomes one (``n`` counts the parameters of ``m`` not already in a unit below it).
"""
from ...nn.modules.attention import MultiheadAttention
from ...nn.modules.container import ModuleDict, ModuleList

__all__ = ["ModuleWrapPolicy", "size_based_auto_wrap_policy", "transformer_auto_wrap_policy"]

DEFAULT_FORCE_LEAF_MODULES = {MultiheadAttention}
DEFAULT_EXCLUDE_WRAP_MODULES = {ModuleList, ModuleDict}


def _module_wrap_policy(module, recurse, nonwrapped_numel, module_classes):
    if recurse:
        return True
    return isinstance(module, tuple(module_classes))


def transformer_auto_wrap_policy(module, recurse, nonwrapped_numel, transformer_layer_cls):
    """Each instance of a class in ``transformer_layer_cls`` becomes a unit."""
    return _module_wrap_policy(module, recurse, nonwrapped_numel, transformer_layer_cls)


def size_based_auto_wrap_policy(module, recurse, nonwrapped_numel, min_num_params=int(1e8),
                                force_leaf_modules=None, exclude_wrap_modules=None):
    """A module with at least ``min_num_params`` parameters not yet in a unit becomes one."""
    force_leaf_modules = DEFAULT_FORCE_LEAF_MODULES if force_leaf_modules is None \
        else force_leaf_modules
    exclude_wrap_modules = DEFAULT_EXCLUDE_WRAP_MODULES if exclude_wrap_modules is None \
        else exclude_wrap_modules
    is_large = nonwrapped_numel >= min_num_params
    if recurse:
        return is_large and not isinstance(module, tuple(force_leaf_modules))
    return is_large and not isinstance(module, tuple(exclude_wrap_modules))


class ModuleWrapPolicy:
    """Every instance of the given module classes becomes a unit."""

    def __init__(self, module_classes):
        self._module_classes = set(module_classes)

    def __call__(self, module, recurse, *args, **kwargs):
        return _module_wrap_policy(module, recurse, -1, self._module_classes)

    def __repr__(self):
        return f"ModuleWrapPolicy({sorted(cls.__name__ for cls in self._module_classes)})"


def _recursive_wrap(module, auto_wrap_policy, wrap, only_wrap_children=False):
    """Wrap the submodules the policy picks, bottom-up; returns (module, wrapped numel)."""
    from .fully_sharded_data_parallel import FullyShardedDataParallel
    nonwrapped_numel = sum(p.numel() for p in _params_outside_units(module))
    if not auto_wrap_policy(module=module, recurse=True, nonwrapped_numel=nonwrapped_numel):
        return module, 0
    total_wrapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, FullyShardedDataParallel):
            continue
        wrapped, numel = _recursive_wrap(child, auto_wrap_policy, wrap)
        setattr(module, name, wrapped)
        total_wrapped += numel
    remainder = nonwrapped_numel - total_wrapped
    if not only_wrap_children and auto_wrap_policy(module=module, recurse=False,
                                                   nonwrapped_numel=remainder):
        return wrap(module), nonwrapped_numel
    return module, total_wrapped


def _params_outside_units(module):
    from .fully_sharded_data_parallel import FullyShardedDataParallel
    stack = [module]
    while stack:
        current = stack.pop()
        if isinstance(current, FullyShardedDataParallel):
            continue
        yield from (p for p in current._parameters.values() if p is not None)
        stack.extend(child for child in current._modules.values() if child is not None)
