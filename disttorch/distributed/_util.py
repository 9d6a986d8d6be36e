"""Group helpers shared by the tensor-level modules of disttorch.distributed."""
from disttorch import comm


class GroupMember:
    """``GroupMember.WORLD`` is the default group; non-members of a new_group get NON_GROUP_MEMBER."""
    WORLD = None
    NON_GROUP_MEMBER = object()


def _group(group):
    return comm.group_or_default(group)


def _is_member(group):
    return group is not GroupMember.NON_GROUP_MEMBER


def _group_rank(pg, global_rank, role):
    try:
        return pg.ranks.index(global_rank)
    except ValueError:
        raise ValueError(f"{role} {global_rank} is not part of the process group with ranks "
                         f"{pg.ranks}; pass a global rank that belongs to the group") from None


def _mark_written(*tensors):
    """Bump autograd's version counter, as PyTorch's in-place collectives do."""
    for tensor in tensors:
        tensor._vc[0] += 1
