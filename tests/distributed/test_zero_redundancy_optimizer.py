"""ZeroRedundancyOptimizer in real processes: training equals one process on the full batch, state
is sharded 1/N, and state_dict has PyTorch's layout (jobs in conftest.py)."""
import pytest

from sharding_harness import check_scenario

# The 2-rank job ends by dying in a checkpoint save on purpose; its exit codes are checked there.
TWO = dict(clean_exit=False)


@pytest.mark.parametrize("scenario", ["zero_matches_full_batch", "zero_bucket_view_and_comm_hook",
                                      "zero_state_is_sharded", "zero_state_dict_round_trip"])
def test_two_ranks(two_ranks, scenario):
    check_scenario(two_ranks, scenario, **TWO)


@pytest.mark.parametrize("scenario", ["zero_matches_full_batch", "zero_state_is_sharded"])
def test_three_ranks(three_ranks, scenario):
    check_scenario(three_ranks, scenario)
