"""User errors raise PyTorch's exception types with messages that name both sides, never a numpy traceback."""
import pytest

import disttorch


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a ** b,
    lambda a, b: disttorch.maximum(a, b), lambda a, b: disttorch.minimum(a, b), lambda a, b: a < b,
], ids=["add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt"])
def test_broadcast_mismatch_names_both_shapes(op):
    a, b = disttorch.ones(2, 3), disttorch.ones(4)
    with pytest.raises(RuntimeError, match=r"\(3\).*\(4\).*\[2, 3\].*\[4\]"):
        op(a, b)


def test_broadcast_error_type_matches_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) + torch.ones(4)
    with pytest.raises(RuntimeError, match="add"):
        disttorch.ones(2, 3) + disttorch.ones(4)


def test_inplace_broadcast_mismatch():
    with pytest.raises(RuntimeError, match=r"\[2, 3\].*\[4\]"):
        disttorch.ones(2, 3).add_(disttorch.ones(4))


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(RuntimeError, match="2x3 and 4x5"):
        disttorch.ones(2, 3) @ disttorch.ones(4, 5)
    with pytest.raises(RuntimeError, match=r"\[2, 2, 3\].*\[2, 4, 5\]"):
        disttorch.ones(2, 2, 3) @ disttorch.ones(2, 4, 5)
    with pytest.raises(RuntimeError, match="1D"):
        disttorch.ones(3) @ disttorch.tensor(2.0)


def test_matmul_dtype_mismatch_names_both_dtypes():
    with pytest.raises(RuntimeError, match="float32.*float64"):
        disttorch.ones(2, 2) @ disttorch.ones(2, 2, dtype=disttorch.float64)


def test_mm_bmm_dot_rank_errors():
    with pytest.raises(RuntimeError, match="3D and 2D"):
        disttorch.mm(disttorch.ones(1, 2, 2), disttorch.ones(2, 2))
    with pytest.raises(RuntimeError, match="3D"):
        disttorch.bmm(disttorch.ones(2, 2), disttorch.ones(2, 2))
    with pytest.raises(RuntimeError, match=r"\[3\].*\[4\]"):
        disttorch.dot(disttorch.ones(3), disttorch.ones(4))


def test_reshape_and_view_errors():
    with pytest.raises(RuntimeError, match=r"\[4, 2\].*size 6"):
        disttorch.ones(2, 3).reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension"):
        disttorch.ones(6).view(-1, -1)


def test_dimension_out_of_range_is_index_error():
    with pytest.raises(IndexError, match=r"\[-2, 1\].*5"):
        disttorch.ones(2, 3).sum(dim=5)
    with pytest.raises(IndexError):
        disttorch.ones(2).unsqueeze(3)


def test_cat_and_stack_shape_errors():
    with pytest.raises(RuntimeError, match="Expected size 3 but got size 4"):
        disttorch.cat([disttorch.ones(2, 3), disttorch.ones(2, 4)])
    with pytest.raises(RuntimeError, match=r"\[2\] at entry 0 and \[3\] at entry 1"):
        disttorch.stack([disttorch.ones(2), disttorch.ones(3)])


def test_expand_error_names_sizes():
    with pytest.raises(RuntimeError, match=r"\(4\).*\(3\)"):
        disttorch.ones(3).expand(2, 4)


def test_gather_index_errors():
    with pytest.raises(RuntimeError, match="int64"):
        disttorch.ones(2, 2).gather(1, disttorch.tensor([[0]], dtype=disttorch.int32))
    with pytest.raises(RuntimeError, match=r"\(1 vs 2\)"):
        disttorch.ones(2, 2).gather(1, disttorch.tensor([0]))


def test_index_out_of_range_is_index_error():
    with pytest.raises(IndexError):
        disttorch.ones(3)[5]
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        disttorch.ones(3)[disttorch.tensor([0.0])]


def test_numpy_on_tensor_requiring_grad():
    with pytest.raises(RuntimeError, match=r"detach\(\)\.numpy\(\)"):
        disttorch.ones(2, requires_grad=True).numpy()


def test_bool_of_multi_element_tensor():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(disttorch.ones(2))


def test_mean_of_integer_tensor_names_dtype():
    with pytest.raises(RuntimeError, match="int64"):
        disttorch.arange(3).mean()


def test_where_needs_bool_condition():
    with pytest.raises(RuntimeError, match="boolean"):
        disttorch.where(disttorch.ones(2), disttorch.ones(2), disttorch.zeros(2))


def test_invalid_device_string():
    with pytest.raises(RuntimeError, match="cpu, cuda"):
        disttorch.device("tpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        disttorch.device("cuda:x")


def test_creation_with_negative_size():
    with pytest.raises(RuntimeError, match="negative dimension"):
        disttorch.zeros(2, -1)


def test_inplace_on_expanded_tensor_asks_for_clone():
    with pytest.raises(RuntimeError, match="clone"):
        disttorch.ones(3).expand(2, 3).add_(1)
    with pytest.raises(RuntimeError, match="clone"):
        disttorch.ones(3).expand(2, 3).fill_(1)


def test_negating_bool_tensor_points_to_logical_not():
    with pytest.raises(RuntimeError, match="logical_not"):
        -disttorch.tensor([True, False])


@pytest.mark.parametrize("requires_grad", [False, True])
def test_inplace_op_cannot_grow_its_tensor(requires_grad):
    target = disttorch.ones(3, requires_grad=requires_grad) * 1
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        target.add_(disttorch.ones(2, 3))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_setitem_shape_mismatch_names_both_shapes(requires_grad):
    target = disttorch.zeros(3, requires_grad=requires_grad) * 1
    with pytest.raises(RuntimeError, match=r"\[3\].*\[2\]"):
        target[0:2] = disttorch.ones(3)
