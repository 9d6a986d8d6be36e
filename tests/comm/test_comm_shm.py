"""What the shared-memory path costs in memory: peak RSS and /dev/shm, in real processes."""
import pytest

from comm_harness import assert_all_ok, finish_job, reports, shm_files_of, start_job

TENSOR_BYTES = 64 << 20
WINDOW_BYTES = 8 << 20


@pytest.mark.timeout(90)
def test_large_all_reduce_peak_rss_stays_near_the_tensor_and_destroy_unmaps_everything():
    """Three all_reduces of a 64 MiB float32 tensor between two ranks.

    The windows add two slots of 8 MiB in each of the two files (32 MiB = 0.5x once touched,
    as mapped pages count in RSS), so about 1.5x is expected; 2.2x leaves 45 MiB for allocator
    and interpreter noise. Mapping tensor-sized files measured 5.2x here.
    """
    procs, _ = start_job("shm_peak_rss", 2, env={"SHM_RSS_BYTES": str(TENSOR_BYTES),
                                                 "DISTTORCH_SHM_WINDOW_BYTES": str(WINDOW_BYTES)})
    results = finish_job(procs, timeout=80)
    assert_all_ok(results)
    for _, output in results:
        report = reports(output)[-1]
        if "skip" in report:
            pytest.skip(report["skip"])
        assert report["peak_ratio"] <= 2.2, report
        # Two groups (the default one and one kept past destroy), each mapping two files of two
        # slots: the pool is bounded by the window, not by the tensor.
        assert 0 < report["mapped_during"] <= 2 * 2 * 2 * WINDOW_BYTES, report
        assert report["mapped_after"] == 0, report
    assert shm_files_of(procs) == []
