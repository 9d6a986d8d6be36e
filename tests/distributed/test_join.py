"""Join with DDP and ZeroRedundancyOptimizer on uneven inputs (10/7/3 batches), and the error
uneven inputs give without Join (the 3-rank job in conftest.py)."""
from sharding_harness import check_scenario


def test_join_matches_full_batch_training(three_ranks):
    check_scenario(three_ranks, "join_uneven_inputs")


def test_without_join_the_rank_that_ran_out_is_named(three_ranks):
    errors = [entry["error"] for entry in check_scenario(three_ranks, "join_missing_names_rank")]
    for rank in (0, 1):
        assert "rank 2 stopped taking part" in errors[rank] and "Join(" in errors[rank], errors[rank]
    assert "mismatch" in errors[2], errors[2]
