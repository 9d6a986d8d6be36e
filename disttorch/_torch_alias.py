"""The `torch` -> `disttorch` import alias behind `python -m disttorch.as_torch` and `disttorch-launch --as-torch`.

A meta-path finder maps `torch`, `torch.X.Y`, `torchvision` and `torchvision.X` onto disttorch's own
modules. The alias names the very same module objects (`torch.nn is disttorch.nn`), so isinstance
checks, state_dicts and pickled references all agree between the two names.
"""
import importlib
import importlib.abc
import importlib.machinery
import sys

# Most specific prefix first: torchvision must not be read as torch + "vision".
_PREFIXES = (("torchvision", "disttorch.vision"), ("torch", "disttorch"))


def target_name(fullname):
    """The disttorch module that `fullname` (a torch/torchvision module name) stands for, or None."""
    for prefix, target in _PREFIXES:
        if fullname == prefix:
            return target
        if fullname.startswith(prefix + "."):
            return target + fullname[len(prefix):]
    return None


class AliasRefused(RuntimeError):
    """A real torch is already imported, so the alias cannot take its name."""


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return None  # a throwaway module; exec_module swaps the real one in

    def exec_module(self, module):
        # The import system returns whatever sys.modules holds under the name once exec_module ends,
        # so the alias resolves to disttorch's module itself, whose own __spec__ stays untouched.
        sys.modules[module.__name__] = importlib.import_module(self.target)


class TorchAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        target_module = target_name(fullname)
        if target_module is None:
            return None
        if target_module not in sys.modules and importlib.util.find_spec(target_module) is None:
            raise ModuleNotFoundError(
                f"No module named '{fullname}': disttorch has no '{target_module}', which `{fullname}` maps "
                "to when running under disttorch.as_torch", name=fullname)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target_module))


def install():
    """Put the alias at the front of sys.meta_path for this process.

    Raises AliasRefused (a RuntimeError) when a real `torch` is already imported: two frameworks under one name would mix
    tensors of both kinds without a clear error.
    """
    for name in ("torch", "torchvision"):
        loaded = sys.modules.get(name)
        if loaded is not None and target_name(name) != getattr(loaded, "__name__", None):
            raise AliasRefused(
                f"disttorch.as_torch: a real '{name}' ({getattr(loaded, '__file__', 'built-in')}) is already "
                "imported in this process, so 'import torch' cannot be redirected to disttorch. Start a fresh "
                "interpreter with `python -m disttorch.as_torch script.py`, and import nothing from torch "
                "before it.")
    if not any(isinstance(finder, TorchAliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, TorchAliasFinder())


def installed():
    return any(isinstance(finder, TorchAliasFinder) for finder in sys.meta_path)
