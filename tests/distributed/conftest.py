"""The sharding tests share a few multi-process jobs (process start-up dominates their cost).

Order matters: the 4-rank job saves the checkpoint the 2-rank job reshards, the 2-rank job ends by
dying mid-save (so it runs last in its job), and the 1-rank job loads what both left behind.
"""
import pytest

from sharding_harness import run_job

TWO_RANKS = ["zero_matches_full_batch", "zero_bucket_view_and_comm_hook", "zero_state_is_sharded",
             "zero_state_dict_round_trip", "fsdp_matches_full_batch", "fsdp_memory_is_sharded",
             "fsdp_sharded_state_dict_round_trip", "checkpoint_reshard_and_resave",
             "checkpoint_crash_mid_save"]
THREE_RANKS = ["zero_matches_full_batch", "zero_state_is_sharded", "fsdp_matches_full_batch",
               "fsdp_memory_is_sharded", "fsdp_sharded_state_dict_round_trip",
               "join_uneven_inputs", "join_missing_names_rank"]
UNEVEN_BATCHES = [10, 7, 3]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sharding")


@pytest.fixture(scope="session")
def four_ranks(checkpoint_dir):
    return run_job(["checkpoint_save_sharded"], 4, checkpoint_dir)


@pytest.fixture(scope="session")
def two_ranks(four_ranks, checkpoint_dir):
    return run_job(TWO_RANKS, 2, checkpoint_dir, timeout=150)


@pytest.fixture(scope="session")
def one_rank(two_ranks, checkpoint_dir):
    return run_job(["checkpoint_load_whole", "checkpoint_after_crash"], 1, checkpoint_dir)


@pytest.fixture(scope="session")
def three_ranks(tmp_path_factory):
    return run_job(THREE_RANKS, 3, tmp_path_factory.mktemp("sharding3"), timeout=150,
                   batches=UNEVEN_BATCHES)
