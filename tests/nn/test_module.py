"""Module behaviour: registration, traversal, state_dict round trips and errors, modes, hooks, conversion."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import disttorch
from disttorch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.block = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3))
        self.fc2 = nn.Linear(3, 2)
        self.scale = nn.Parameter(disttorch.ones(1))
        self.register_buffer("steps", disttorch.zeros(1))
        self.register_buffer("cache", disttorch.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc2(self.block(self.fc1(x))) * self.scale


def test_registration_by_attribute():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "fc1.weight", "fc1.bias", "block.1.weight", "block.1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "cache", "block.1.running_mean", "block.1.running_var", "block.1.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["fc1", "block", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "block", "block.0", "block.1", "fc2"]
    assert len(list(net.parameters(recurse=False))) == 1
    assert isinstance(net.scale, nn.Parameter) and net.scale.requires_grad


def test_state_dict_keys_and_values_are_detached():
    net = Net()
    state = net.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == ["scale", "steps", "fc1.weight", "fc1.bias", "block.1.weight", "block.1.bias",
                           "block.1.running_mean", "block.1.running_var", "block.1.num_batches_tracked",
                           "fc2.weight", "fc2.bias"]
    assert not state["fc1.weight"].requires_grad
    assert state["fc1.weight"]._data is net.fc1.weight._data
    assert net.state_dict(keep_vars=True)["fc1.weight"] is net.fc1.weight
    assert list(net.fc1.state_dict(prefix="p.")) == ["p.weight", "p.bias"]


def test_state_dict_matches_torch_keys_for_the_same_architecture():
    torch = pytest.importorskip("torch")

    def build(m):
        return m.Sequential(m.Linear(3, 4), m.BatchNorm1d(4), m.Sequential(m.LayerNorm(4), m.Embedding(3, 4)),
                            m.ModuleList([m.Linear(4, 4)]), m.ModuleDict({"head": m.Linear(4, 1)}))

    assert list(build(nn).state_dict()) == list(build(torch.nn).state_dict())


def test_load_state_dict_round_trip():
    src, dst = Net(), Net()
    src.steps.fill_(5)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for key, value in src.state_dict().items():
        assert np.array_equal(dst.state_dict()[key].numpy(), value.numpy()), key
    assert dst.state_dict()["fc1.weight"]._data is not src.state_dict()["fc1.weight"]._data


def test_load_state_dict_strict_errors_list_every_problem():
    layer = nn.Linear(4, 2)
    state = {"weight": disttorch.zeros(3, 4), "extra": disttorch.zeros(1)}
    with pytest.raises(RuntimeError) as info:
        layer.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Linear:\n\t")
    assert 'Missing key(s) in state_dict: "bias".' in message
    assert 'Unexpected key(s) in state_dict: "extra".' in message
    assert ("size mismatch for weight: copying a param with shape torch.Size([3, 4]) from checkpoint, the shape in "
            "current model is torch.Size([2, 4]).") in message


def test_load_state_dict_non_strict_reports_keys():
    net = Net()
    state = net.state_dict()
    del state["fc2.bias"]
    state["fc9.weight"] = disttorch.zeros(1)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["fc2.bias"]
    assert result.unexpected_keys == ["fc9.weight"]
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        net.load_state_dict([1, 2])


def test_load_state_dict_assign_replaces_tensors():
    layer = nn.Linear(2, 2)
    new_weight = disttorch.ones(2, 2)
    layer.load_state_dict({"weight": new_weight, "bias": disttorch.zeros(2)}, assign=True)
    assert layer.weight._data is new_weight._data and isinstance(layer.weight, nn.Parameter)


def test_load_from_torch_state_dict_values():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Linear(3, 2)
    ours = nn.Linear(3, 2)
    ours.load_state_dict({k: disttorch.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    np.testing.assert_array_equal(ours.weight.detach().numpy(), ref.weight.detach().numpy())


def test_assignment_rules_and_errors():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'torch.FloatTensor' as parameter 'scale'"):
        net.scale = disttorch.ones(1)
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc1'"):
        net.fc1 = 3
    net.steps = disttorch.ones(1)
    assert net.steps.tolist() == [1.0] and "steps" in net.state_dict()
    net.extra = nn.Buffer(disttorch.ones(2), persistent=False)
    assert "extra" in dict(net.named_buffers()) and "extra" not in net.state_dict()
    with pytest.raises(KeyError, match="already exists"):
        net.register_buffer("fc1", disttorch.ones(1))
    with pytest.raises(KeyError, match="contain"):
        net.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="is not a Module subclass"):
        net.add_module("x", 5)
    with pytest.raises(AttributeError, match="cannot assign parameters before Module.__init__"):
        class Early(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(disttorch.ones(1))
        Early()


def test_unknown_attribute_and_delattr():
    layer = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'foo'"):
        _ = layer.foo
    del layer.bias
    assert "bias" not in dict(layer.named_parameters())
    assert "weight" in dir(layer) and "forward" in dir(layer)


def test_get_submodule_and_parameter():
    net = Net()
    assert net.get_submodule("block.1") is net.block[1]
    assert net.get_parameter("block.1.weight") is net.block[1].weight
    assert net.get_buffer("block.1.running_mean") is net.block[1].running_mean
    with pytest.raises(AttributeError, match="Sequential has no attribute `7`"):
        net.get_submodule("block.7")
    with pytest.raises(AttributeError, match="`running_mean` is not an nn.Parameter"):
        net.get_parameter("block.1.running_mean")


def test_train_eval_propagates():
    net = Net()
    assert net.training and net.block[1].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_zero_grad_and_requires_grad():
    net = Net()
    net(disttorch.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_double_keeps_parameter_objects_and_int_buffers():
    net = Net()
    weight = net.fc1.weight
    net(disttorch.randn(3, 4)).sum().backward()
    assert net.double() is net
    assert net.fc1.weight is weight and weight.dtype == disttorch.float64
    assert weight.grad.dtype == disttorch.float64
    assert net.block[1].running_mean.dtype == disttorch.float64
    assert net.block[1].num_batches_tracked.dtype == disttorch.int64
    net.to(disttorch.float32)
    assert weight.dtype == disttorch.float32
    net.to("cpu")
    with pytest.raises(TypeError, match="only accepts floating point"):
        net.to(disttorch.int64)


def test_apply_visits_children_first():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "BatchNorm1d", "Sequential", "Linear", "Net"]


def test_forward_hooks_can_replace_inputs_and_outputs():
    layer = nn.Linear(2, 2)
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(out) or out + 1)
    out = layer(disttorch.ones(1, 2))
    np.testing.assert_allclose(out.detach().numpy(), layer.bias.detach().numpy()[None] + 1, rtol=1e-6)
    assert len(calls) == 1
    pre.remove()
    post.remove()
    out = layer(disttorch.ones(1, 2))
    assert len(calls) == 1 and not layer._has_hooks


def test_hooks_with_kwargs_and_prepend():
    class Scaled(nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale

    module = Scaled()
    order = []
    module.register_forward_pre_hook(lambda m, args, kwargs: (args, {"scale": 3.0}), with_kwargs=True)
    module.register_forward_hook(lambda m, args, kwargs, out: order.append(("kw", kwargs["scale"])),
                                 with_kwargs=True)
    module.register_forward_hook(lambda m, args, out: order.append("first"), prepend=True)
    assert module(disttorch.ones(1)).tolist() == [3.0]
    assert order == ["first", ("kw", 3.0)]


def test_full_backward_hook_sees_gradients_and_can_replace_them():
    layer = nn.Linear(3, 2)
    seen = {}

    def hook(module, grad_input, grad_output):
        seen["in"] = grad_input[0].numpy().copy()
        seen["out"] = grad_output[0].numpy().copy()
        return (grad_input[0] * 2,)

    layer.register_full_backward_hook(hook)
    x = disttorch.randn(4, 3, requires_grad=True)
    layer(x).sum().backward()
    np.testing.assert_allclose(seen["out"], np.ones((4, 2)))
    expected = np.ones((4, 2)) @ layer.weight.detach().numpy()
    np.testing.assert_allclose(seen["in"], expected, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected, rtol=1e-6)


def test_backward_hook_runs_when_input_needs_no_grad():
    layer = nn.Linear(3, 2)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    layer(disttorch.randn(4, 3)).sum().backward()
    assert seen == [((None,), disttorch.Size([4, 2]))]


def test_backward_pre_hook_can_scale_grad_output():
    layer = nn.Linear(3, 2)
    layer.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))
    layer(disttorch.randn(4, 3)).sum().backward()
    np.testing.assert_allclose(layer.bias.grad.numpy(), [12.0, 12.0])


def test_missing_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(1)


def test_parameter_repr_and_construction():
    p = nn.Parameter(disttorch.tensor([1.0, 2.0]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert not nn.Parameter(disttorch.ones(1), requires_grad=False).requires_grad
    assert isinstance(p * 2, disttorch.Tensor) and not isinstance(p * 2, nn.Parameter)


def test_deepcopy_and_pickle_make_independent_modules():
    net = Net()
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert isinstance(clone.fc1.weight, nn.Parameter)
        np.testing.assert_array_equal(clone.fc1.weight.detach().numpy(), net.fc1.weight.detach().numpy())
        with disttorch.no_grad():
            clone.fc1.weight.fill_(0)
        assert float(net.fc1.weight.abs().sum()) > 0


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    assert len(list(model.parameters())) == 2
    assert len(list(model.named_parameters(remove_duplicate=False))) == 4
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_sequential_container_operations():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    seq.append(nn.Sigmoid())
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"]
    seq.insert(1, nn.Tanh())
    assert type(seq[1]).__name__ == "Tanh"
    seq[0] = nn.Linear(2, 3)
    assert seq(disttorch.randn(4, 2)).shape == (4, 1)
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"]
    with pytest.raises(IndexError):
        seq[10]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    assert len(layers) == 5 and len(list(layers.parameters())) == 6
    assert isinstance(layers[1:3], nn.ModuleList)
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    table = nn.ModuleDict({"a": nn.Linear(1, 1)})
    table["b"] = nn.ReLU()
    assert list(table.keys()) == ["a", "b"] and "a" in table and len(table) == 2
    assert table.pop("b").__class__.__name__ == "ReLU"


def test_parameter_list_and_dict():
    plist = nn.ParameterList([disttorch.ones(2), nn.Parameter(disttorch.zeros(3))])
    assert all(isinstance(p, nn.Parameter) for p in plist) and len(plist) == 2
    assert list(dict(plist.named_parameters())) == ["0", "1"]
    pdict = nn.ParameterDict({"a": disttorch.ones(1)})
    pdict["b"] = disttorch.zeros(2)
    assert list(pdict.keys()) == ["a", "b"] and list(pdict.state_dict()) == ["a", "b"]


def test_train_override_in_a_child_is_honoured():
    class FrozenNorm(nn.BatchNorm1d):
        def train(self, mode=True):
            return super().train(False)

    model = nn.Sequential(nn.Linear(2, 2), FrozenNorm(2))
    model.train()
    assert model.training and model[0].training and not model[1].training


def test_backward_hook_on_a_module_returning_a_tuple():
    class TwoOutputs(nn.Module):
        def forward(self, x):
            return x * 2, x.detach()

    module = TwoOutputs()
    seen = []
    module.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].tolist(), go[0].tolist(), go[1])))
    x = disttorch.tensor([1.0, 2.0], requires_grad=True)
    first, _ = module(x)
    first.sum().backward()
    assert seen == [([2.0, 2.0], [1.0, 1.0], None)]
