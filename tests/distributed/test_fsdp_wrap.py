"""FSDP auto-wrap policies pick the same submodules as PyTorch's on the same model structure."""
import functools

import pytest

import disttorch
from disttorch.distributed.fsdp.wrap import (ModuleWrapPolicy, _recursive_wrap,
                                             size_based_auto_wrap_policy,
                                             transformer_auto_wrap_policy)

torch = pytest.importorskip("torch")
torch_wrap = pytest.importorskip("torch.distributed.fsdp.wrap")


def model(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(),
        nn.Sequential(nn.Linear(32, 32), nn.Sequential(nn.Linear(32, 4), nn.Linear(4, 4))),
        nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0),
        nn.ModuleList([nn.Linear(32, 32), nn.Linear(32, 2)]),
        nn.Linear(32, 3))


def wrapped_paths(lib, wrap_fn):
    marker_base = lib.nn.Module

    class Marker(marker_base):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    root = model(lib)
    wrap_fn(root, lambda child: Marker(child))
    return sorted(name for name, module in root.named_modules() if isinstance(module, Marker))


def ours(policy):
    return wrapped_paths(disttorch, lambda root, wrap: _recursive_wrap(root, policy, wrap,
                                                                       only_wrap_children=True))


def theirs(policy):
    return wrapped_paths(torch, lambda root, wrap: torch_wrap._recursive_wrap(
        root, policy, wrap, ignored_modules=set(), ignored_params=set(), only_wrap_children=True))


@pytest.mark.parametrize("min_num_params", [1, 100, 1000, 3000, 10_000])
def test_size_based_policy(min_num_params):
    assert ours(functools.partial(size_based_auto_wrap_policy, min_num_params=min_num_params)) == \
        theirs(functools.partial(torch_wrap.size_based_auto_wrap_policy, min_num_params=min_num_params))


def test_transformer_policy():
    assert ours(functools.partial(transformer_auto_wrap_policy,
                                  transformer_layer_cls={disttorch.nn.TransformerEncoderLayer})) == \
        theirs(functools.partial(torch_wrap.transformer_auto_wrap_policy,
                                 transformer_layer_cls={torch.nn.TransformerEncoderLayer}))


def test_module_wrap_policy():
    assert ours(ModuleWrapPolicy({disttorch.nn.Linear})) == \
        theirs(torch_wrap.ModuleWrapPolicy({torch.nn.Linear}))
