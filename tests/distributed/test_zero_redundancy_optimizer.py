"""ZeroRedundancyOptimizer in real processes: training equals one process on the full batch, state
is sharded 1/N, and state_dict has PyTorch's layout."""
import pytest

from sharding_harness import check_scenario, run_job

SCENARIOS = ["zero_matches_full_batch", "zero_bucket_view_and_comm_hook", "zero_state_is_sharded",
             "zero_state_dict_round_trip"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return run_job(SCENARIOS, 2, tmp_path_factory.mktemp("zero2"))


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    return run_job(["zero_matches_full_batch", "zero_state_is_sharded"], 3,
                   tmp_path_factory.mktemp("zero3"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_ranks(two_ranks, scenario):
    check_scenario(two_ranks, scenario)


@pytest.mark.parametrize("scenario", ["zero_matches_full_batch", "zero_state_is_sharded"])
def test_three_ranks(three_ranks, scenario):
    check_scenario(three_ranks, scenario)
