"""disttorch.distributed.checkpoint: FSDP shards saved by 4 ranks load into 2 ranks and into one
process, and a save that dies before committing leaves the previous checkpoint loadable."""
import pytest

from sharding_harness import check_scenario, run_job


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dcp")


@pytest.mark.timeout(240)
def test_reshard_4_to_2_to_1(workdir):
    check_scenario(run_job(["checkpoint_save_sharded"], 4, workdir), "checkpoint_save_sharded")
    check_scenario(run_job(["checkpoint_reshard_and_resave"], 2, workdir),
                   "checkpoint_reshard_and_resave")
    check_scenario(run_job(["checkpoint_load_whole"], 1, workdir), "checkpoint_load_whole")


def test_crash_mid_save_keeps_previous_checkpoint(workdir):
    results = run_job(["checkpoint_crash_mid_save"], 2, workdir, timeout=90)
    codes = [code for code, _ in results]
    assert codes[0] == 3, results[0][1]
    assert codes[1] != 0, results[1][1]
    (after,) = check_scenario(run_job(["checkpoint_after_crash"], 1, workdir), "checkpoint_after_crash")
    assert after["data_dirs"] == 2  # the committed folder and the abandoned one
