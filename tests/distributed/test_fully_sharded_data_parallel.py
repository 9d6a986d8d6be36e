"""FullyShardedDataParallel in real processes: FULL_SHARD and SHARD_GRAD_OP training equals one
process on the full batch, memory per rank is 1/N plus one unit, and state_dict round trips
(jobs in conftest.py)."""
import pytest

from sharding_harness import check_scenario

SCENARIOS = ["fsdp_matches_full_batch", "fsdp_memory_is_sharded",
             "fsdp_sharded_state_dict_round_trip"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_ranks(two_ranks, scenario):
    check_scenario(two_ranks, scenario, clean_exit=False)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_three_ranks(three_ranks, scenario):
    check_scenario(three_ranks, scenario)
