"""disttorch.distributed.checkpoint: FSDP shards saved by 4 ranks load into 2 ranks and into one
process, and a save that dies before committing leaves the previous checkpoint loadable (jobs in
conftest.py)."""
from sharding_harness import check_scenario


def test_reshard_4_to_2_to_1(four_ranks, two_ranks, one_rank):
    check_scenario(four_ranks, "checkpoint_save_sharded")
    check_scenario(two_ranks, "checkpoint_reshard_and_resave", clean_exit=False)
    check_scenario(one_rank, "checkpoint_load_whole")


def test_crash_mid_save_keeps_previous_checkpoint(two_ranks, one_rank):
    check_scenario(two_ranks, "checkpoint_crash_mid_save", clean_exit=False)
    codes = [code for code, _ in two_ranks]
    assert codes[0] == 3, two_ranks[0][1]
    assert codes[1] != 0, two_ranks[1][1]
    (after,) = check_scenario(one_rank, "checkpoint_after_crash")
    assert after["data_dirs"] == 2  # the committed folder and the abandoned one
