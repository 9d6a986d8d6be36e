"""Every collective x reduce op x dtype x world size, in real processes, against numpy."""
import pytest

from comm_harness import assert_all_ok, finish_job, reports, run_job, shm_files_of, start_job

# Tiny pieces and a tiny direct-path limit push even small arrays through the
# chunked ring and chain code paths, so the matrix stays cheap.
SMALL_PIECES = {"DISTTORCH_PIECE_BYTES": "4096", "DISTTORCH_DIRECT_BYTES": "512"}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_collective_matrix(world_size):
    results = run_job("matrix", world_size, env=SMALL_PIECES, timeout=140)
    assert_all_ok(results)
    counts = [reports(output)[-1]["checks"] for _, output in results]
    assert all(count > 500 for count in counts), counts


@pytest.mark.timeout(120)
def test_matrix_over_tcp_with_default_pieces():
    assert_all_ok(run_job("matrix", 3, env={"DISTTORCH_TRANSPORT": "tcp"}, timeout=110))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("world_size,shm", [(2, "1"), (3, "1"), (3, "0")])
def test_large_arrays_default_pieces(world_size, shm):
    results = run_job("large", world_size, env={"DISTTORCH_SHM": shm}, timeout=110)
    assert_all_ok(results)
    assert reports(results[0][1])[-1]["checks"] == 4


@pytest.mark.timeout(120)
def test_matrix_with_curve_encryption():
    assert_all_ok(run_job("matrix", 2, env={"DISTTORCH_CURVE": "1", **SMALL_PIECES}, timeout=110))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("world_size", [2, 3])
def test_collective_matrix_over_shared_memory(world_size):
    """Every array, even an empty one, takes the shared-memory path, most of them in several
    windows of an odd size (ragged last windows, slots of every dtype); no file outlives the job."""
    procs, _ = start_job("matrix", world_size, env={**SMALL_PIECES, "DISTTORCH_SHM_MIN_BYTES": "0",
                                                    "DISTTORCH_SHM_WINDOW_BYTES": "3000"})
    results = finish_job(procs, timeout=140)
    assert_all_ok(results)
    assert all(reports(output)[-1]["checks"] > 500 for _, output in results)
    assert shm_files_of(procs) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("world_size", [2, 3])
def test_early_sends_mixed_with_later_collectives(world_size):
    results = run_job("early_sends", world_size, env={"DISTTORCH_SHM": "0"}, timeout=110)
    assert_all_ok(results)
    assert all(reports(output)[-1]["checks"] == 30 for _, output in results)
