"""Shared by the benchmarks: one BLAS thread per process, and alternating side-by-side timing.

Import this module before numpy or torch so the thread settings take effect.
"""
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"


def seconds_per_call(fn, calls, clock=time.perf_counter):
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls


def compare(name, ours, ref, calls, rounds, clock=time.perf_counter):
    """Time `ours` against `ref` in alternating rounds; returns ours / ref on each side's best round."""
    return compare_seconds(name, ours, ref, calls, rounds, clock)[0]


def compare_seconds(name, ours, ref, calls, rounds, clock=time.perf_counter):
    """compare(), returning (ratio, ours_best_seconds, ref_best_seconds).

    Rounds alternate so drifts in machine load hit both; the best round is the one least disturbed by
    other work, for either library. Medians are printed alongside. `clock=time.thread_time` counts this
    thread's CPU time instead of wall time: on a machine shared with other work it leaves out the time the
    thread waited for a core (cache and memory contention still show).
    """
    for fn in (ours, ref):
        seconds_per_call(fn, max(1, calls // 2), clock)
    ours_times, ref_times = [], []
    for _ in range(rounds):
        ours_times.append(seconds_per_call(ours, calls, clock))
        ref_times.append(seconds_per_call(ref, calls, clock))
    ours_best, ref_best = min(ours_times), min(ref_times)
    ratio = ours_best / ref_best
    print(f"{name}: disttorch {ours_best * 1e3:.3f} ms  torch {ref_best * 1e3:.3f} ms  ratio {ratio:.2f}  "
          f"(medians {statistics.median(ours_times) * 1e3:.3f} / {statistics.median(ref_times) * 1e3:.3f} ms)")
    return ratio, ours_best, ref_best
