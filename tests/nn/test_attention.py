"""MultiheadAttention and scaled_dot_product_attention against PyTorch (float64, state copied across)."""
import numpy as np
import pytest
from nn_testing import assert_close, assert_same_grads, pair_inputs, torch_state_to_ours

import disttorch
from disttorch import nn
from disttorch.nn import functional as F

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
KEY_PADDING = np.array([[False, False, True, False, True], [False, False, False, False, False]])
FLOAT_MASK = RNG.standard_normal((3, 5))
BOOL_MASK = np.array([[False, True, False, False, False], [False, False, True, True, False],
                      [True, False, False, False, False]])

MHA_CASES = [
    ("basic", {}, {}),
    ("batch_first", {"batch_first": True}, {}),
    ("key_padding", {}, {"key_padding_mask": KEY_PADDING}),
    ("float_mask", {}, {"attn_mask": FLOAT_MASK}),
    ("bool_mask_per_head_weights", {}, {"attn_mask": BOOL_MASK, "average_attn_weights": False}),
    ("kdim_vdim", {"kdim": 3, "vdim": 6}, {}),
    ("bias_kv_zero_attn", {"add_bias_kv": True, "add_zero_attn": True}, {"key_padding_mask": KEY_PADDING}),
    ("no_bias", {"bias": False}, {}),
]


def _tensors(lib, kwargs):
    out = {}
    for name, value in kwargs.items():
        out[name] = lib.tensor(value) if isinstance(value, np.ndarray) else value
    return out


@pytest.mark.parametrize("name,ctor,call", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_torch(name, ctor, call):
    ref = torch.nn.MultiheadAttention(8, 2, **ctor).double()
    ours = nn.MultiheadAttention(8, 2, **ctor).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    torch_state_to_ours(ref, ours)
    batch_first = ctor.get("batch_first", False)
    q_shape = (2, 3, 8) if batch_first else (3, 2, 8)
    k_shape = (2, 5, ctor.get("kdim", 8)) if batch_first else (5, 2, ctor.get("kdim", 8))
    v_shape = k_shape[:-1] + (ctor.get("vdim", 8),)
    rng = np.random.default_rng(1)
    q, q_ref = pair_inputs(torch, rng.standard_normal(q_shape))
    k, k_ref = pair_inputs(torch, rng.standard_normal(k_shape))
    v, v_ref = pair_inputs(torch, rng.standard_normal(v_shape))
    out, weights = ours(q, k, v, **_tensors(disttorch, call))
    out_ref, weights_ref = ref(q_ref, k_ref, v_ref, **_tensors(torch, call))
    assert_close(out, out_ref)
    assert_close(weights, weights_ref)
    (out.sum() + (weights * weights).sum()).backward()
    (out_ref.sum() + (weights_ref * weights_ref).sum()).backward()
    for ours_in, ref_in in ((q, q_ref), (k, k_ref), (v, v_ref)):
        assert_close(ours_in.grad, ref_in.grad)
    assert_same_grads(ours, ref)


def test_multihead_attention_unbatched_causal_and_repr():
    ref = torch.nn.MultiheadAttention(4, 1).double()
    ours = nn.MultiheadAttention(4, 1).double()
    assert repr(ours) == repr(ref)
    torch_state_to_ours(ref, ours)
    x, x_ref = pair_inputs(torch, np.random.default_rng(2).standard_normal((3, 4)))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64)
    out, w = ours(x, x, x, is_causal=True, need_weights=True)
    out_ref, w_ref = ref(x_ref, x_ref, x_ref, attn_mask=mask, is_causal=True)
    assert_close(out, out_ref)
    assert_close(w, w_ref)
    assert ours(x, x, x, need_weights=False)[1] is None


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"scale": 0.3}, {"mask": "bool"}, {"mask": "float"}])
def test_scaled_dot_product_attention_matches_torch(kwargs):
    rng = np.random.default_rng(3)
    q, q_ref = pair_inputs(torch, rng.standard_normal((2, 2, 3, 4)))
    k, k_ref = pair_inputs(torch, rng.standard_normal((2, 2, 5, 4)))
    v, v_ref = pair_inputs(torch, rng.standard_normal((2, 2, 5, 4)))
    kwargs = dict(kwargs)
    mask_kind = kwargs.pop("mask", None)
    ours_kw, ref_kw = dict(kwargs), dict(kwargs)
    if mask_kind == "bool":
        ours_kw["attn_mask"], ref_kw["attn_mask"] = disttorch.tensor(~BOOL_MASK), torch.tensor(~BOOL_MASK)
    elif mask_kind == "float":
        ours_kw["attn_mask"], ref_kw["attn_mask"] = disttorch.tensor(FLOAT_MASK), torch.tensor(FLOAT_MASK)
    out = F.scaled_dot_product_attention(q, k, v, **ours_kw)
    out_ref = torch.nn.functional.scaled_dot_product_attention(q_ref, k_ref, v_ref, **ref_kw)
    assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    for ours_in, ref_in in ((q, q_ref), (k, k_ref), (v, v_ref)):
        assert_close(ours_in.grad, ref_in.grad)


def test_multihead_attention_validates_heads():
    with pytest.raises(AssertionError, match="divisible by num_heads"):
        nn.MultiheadAttention(6, 4)


def _transformer_pair(norm_first, batch_first):
    kwargs = {"dim_feedforward": 16, "dropout": 0.0, "norm_first": norm_first, "batch_first": batch_first}
    ref = torch.nn.Transformer(8, 2, 2, 1, **kwargs).double()
    ours = nn.Transformer(8, 2, 2, 1, **kwargs).double()
    return ours, ref


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm_first,batch_first", [(False, False), (True, True)])
def test_transformer_matches_torch(norm_first, batch_first):
    ours, ref = _transformer_pair(norm_first, batch_first)
    assert list(ours.state_dict()) == list(ref.state_dict())
    torch_state_to_ours(ref, ours)
    rng = np.random.default_rng(4)
    src_shape, tgt_shape = ((2, 5, 8), (2, 3, 8)) if batch_first else ((5, 2, 8), (3, 2, 8))
    src, src_ref = pair_inputs(torch, rng.standard_normal(src_shape))
    tgt, tgt_ref = pair_inputs(torch, rng.standard_normal(tgt_shape))
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=disttorch.float64)
    tgt_mask_ref = torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64)
    assert_close(tgt_mask, tgt_mask_ref)
    padding = np.array([[False, False, False, True, True], [False] * 5])
    out = ours(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=disttorch.tensor(padding),
               memory_key_padding_mask=disttorch.tensor(padding))
    out_ref = ref(src_ref, tgt_ref, tgt_mask=tgt_mask_ref, src_key_padding_mask=torch.tensor(padding),
                  memory_key_padding_mask=torch.tensor(padding))
    assert_close(out, out_ref, rtol=1e-5, atol=1e-7)
    out.sum().backward()
    out_ref.sum().backward()
    assert_close(src.grad, src_ref.grad, rtol=1e-5, atol=1e-7)
    assert_same_grads(ours, ref, rtol=1e-5, atol=1e-7)


def test_transformer_encoder_layer_with_gelu_module_matches_torch():
    ref = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu").double()
    ours = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu").double()
    assert repr(ours) == repr(ref)
    torch_state_to_ours(ref, ours)
    x, x_ref = pair_inputs(torch, np.random.default_rng(5).standard_normal((4, 2, 8)))
    assert_close(ours(x, is_causal=False), ref(x_ref))


SDPA_GRADCHECK_CASES = {
    "plain": {},
    "causal": {"is_causal": True},
    "bool_mask": {"attn_mask": disttorch.tensor(~BOOL_MASK)},
    "scale_and_dropout": {"scale": 0.3, "dropout_p": 0.4},
}


@pytest.mark.parametrize("case", list(SDPA_GRADCHECK_CASES))
def test_scaled_dot_product_attention_gradcheck(case):
    from disttorch.autograd import gradcheck
    kwargs = SDPA_GRADCHECK_CASES[case]
    rng = np.random.default_rng(4)
    q, k, v = (disttorch.tensor(rng.standard_normal(shape), requires_grad=True)
               for shape in ((2, 3, 4), (2, 5, 4), (2, 5, 4)))

    def attend(q, k, v):
        disttorch.manual_seed(0)  # the same dropout mask at every finite-difference probe
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    assert gradcheck(attend, (q, k, v))


def test_scaled_dot_product_attention_gradcheck_through_a_float_mask():
    from disttorch.autograd import gradcheck
    rng = np.random.default_rng(5)
    q, k, v, mask = (disttorch.tensor(rng.standard_normal(shape), requires_grad=True)
                     for shape in ((2, 3, 4), (2, 5, 4), (2, 5, 4), (3, 5)))
    assert gradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), (q, k, v, mask))


def test_scaled_dot_product_attention_is_one_graph_node_and_zero_on_fully_masked_rows():
    rng = np.random.default_rng(6)
    q, q_ref = pair_inputs(torch, rng.standard_normal((1, 2, 3, 4)))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=disttorch.tensor(mask))
    out_ref = torch.nn.functional.scaled_dot_product_attention(q_ref, q_ref, q_ref, attn_mask=torch.tensor(mask))
    assert out.grad_fn.name() == "ScaledDotProductAttentionBackward0"
    assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    assert_close(q.grad, q_ref.grad)


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention_float32_rows_far_below_the_maximum_match_torch(causal):
    # The mask sinks batch 1's scores ~100 below batch 0's: shifting every row by the one global maximum would
    # underflow batch 1's exponentials to 0/0, so those scores must be redone with per-row maxima.
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 2, 6, 8)).astype(np.float32) for _ in range(3)]
    mask = np.zeros((2, 1, 6, 6), dtype=np.float32)
    mask[1] -= 100.0
    if causal:
        mask[:, :, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] = -np.inf
    ours = [disttorch.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, attn_mask=disttorch.tensor(mask))
    out_ref = torch.nn.functional.scaled_dot_product_attention(*ref, attn_mask=torch.tensor(mask))
    assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    weights = rng.standard_normal(out.shape).astype(np.float32)
    (out * disttorch.tensor(weights)).sum().backward()
    (out_ref * torch.tensor(weights)).sum().backward()
    for ours_in, ref_in in zip(ours, ref):
        assert_close(ours_in.grad, ref_in.grad, rtol=1e-4, atol=1e-5)


def test_scaled_dot_product_attention_dropout_keeps_expected_mass():
    disttorch.manual_seed(0)
    q = disttorch.zeros(1, 64, 8)
    v = disttorch.ones(1, 64, 8)
    out = F.scaled_dot_product_attention(q, q, v, dropout_p=0.25)
    # Uniform weights 1/64, each kept with probability 0.75 and scaled by 1/0.75: the rows average 1.
    assert abs(out.mean().item() - 1.0) < 0.05
    assert out.min().item() < 1.0 < out.max().item()


@pytest.mark.parametrize("name,ctor,call", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_without_weights_takes_the_fused_path_and_matches_torch(name, ctor, call):
    ref = torch.nn.MultiheadAttention(8, 2, **ctor).double()
    ours = nn.MultiheadAttention(8, 2, **ctor).double()
    torch_state_to_ours(ref, ours)
    batch_first = ctor.get("batch_first", False)
    q_shape = (2, 3, 8) if batch_first else (3, 2, 8)
    k_shape = (2, 5, ctor.get("kdim", 8)) if batch_first else (5, 2, ctor.get("kdim", 8))
    v_shape = k_shape[:-1] + (ctor.get("vdim", 8),)
    rng = np.random.default_rng(1)
    q, q_ref = pair_inputs(torch, rng.standard_normal(q_shape))
    k, k_ref = pair_inputs(torch, rng.standard_normal(k_shape))
    v, v_ref = pair_inputs(torch, rng.standard_normal(v_shape))
    out, weights = ours(q, k, v, need_weights=False, **_tensors(disttorch, call))
    out_ref, _ = ref(q_ref, k_ref, v_ref, need_weights=False, **_tensors(torch, call))
    assert weights is None
    assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    for ours_in, ref_in in ((q, q_ref), (k, k_ref), (v, v_ref)):
        assert_close(ours_in.grad, ref_in.grad)
