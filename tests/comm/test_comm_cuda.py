"""CUDA tensors through the ZeroMQ backend (staged via host memory); needs a GPU."""
import pytest

from comm_harness import assert_all_ok, reports, run_job
from disttorch.core import backend


@pytest.mark.timeout(120)
@pytest.mark.skipif(not backend.cuda_available(), reason="needs cupy and a CUDA GPU")
def test_cuda_tensors_are_staged_through_host():
    results = run_job("cuda", 2, timeout=110)
    assert_all_ok(results)
    assert all(reports(output)[-1]["checks"] == 4 for _, output in results)
