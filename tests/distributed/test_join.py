"""Join with DDP and ZeroRedundancyOptimizer on uneven inputs (10/7/3 batches), and the error
uneven inputs give without Join."""
import pytest

from sharding_harness import check_scenario, run_job


@pytest.fixture(scope="module")
def uneven_three_ranks(tmp_path_factory):
    return run_job(["join_uneven_inputs", "join_missing_names_rank"], 3,
                   tmp_path_factory.mktemp("join"), batches=[10, 7, 3])


def test_join_matches_full_batch_training(uneven_three_ranks):
    check_scenario(uneven_three_ranks, "join_uneven_inputs")


def test_without_join_the_rank_that_ran_out_is_named(uneven_three_ranks):
    errors = [entry["error"] for entry in check_scenario(uneven_three_ranks, "join_missing_names_rank")]
    for rank in (0, 1):
        assert "rank 2 stopped taking part" in errors[rank] and "Join(" in errors[rank], errors[rank]
    assert "mismatch" in errors[2], errors[2]
