"""Worker process for the comm tests: ``python comm_worker.py SCENARIO`` under RANK/WORLD_SIZE env.

Scenarios print JSON lines that the tests read; any uncaught error exits non-zero.
"""
import functools
import json
import os
import re
import signal
import sys
import threading
import time

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
from disttorch.distributed import ReduceOp

RANK = int(os.environ["RANK"])
WORLD = int(os.environ["WORLD_SIZE"])
UFUNCS = {ReduceOp.SUM: np.add, ReduceOp.PRODUCT: np.multiply, ReduceOp.MIN: np.minimum,
          ReduceOp.MAX: np.maximum, ReduceOp.BAND: np.bitwise_and, ReduceOp.BOR: np.bitwise_or,
          ReduceOp.BXOR: np.bitwise_xor}
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_]
SIZES = [0, 1, 7, 1000, 5003]


def report(**fields):
    print(json.dumps(fields), flush=True)


def values(rank, dtype, size, salt=0, small=False):
    """Rank ``rank``'s data: small integers, so every reduction order gives exact results."""
    rng = np.random.default_rng([rank, size, salt, np.dtype(dtype).num])
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, size).astype(bool)
    low = 0 if np.dtype(dtype).kind == "u" else (-2 if small else -8)
    return rng.integers(low, 3 if small else 9, size).astype(dtype)


def ops_for(dtype):
    kind = np.dtype(dtype).kind
    ops = [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
    if kind in "fc":
        ops.append(ReduceOp.AVG)
    if kind in "biu":
        ops += [ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR]
    return ops


def expected_reduction(arrays, op):
    if op is ReduceOp.AVG:
        total = functools.reduce(np.add, arrays)
        return (total / len(arrays)).astype(total.dtype)
    return functools.reduce(UFUNCS[op], arrays)


class Checker:
    def __init__(self):
        self.count = 0

    def equal(self, got, want, what):
        got = got.numpy() if hasattr(got, "numpy") else got
        if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
            raise AssertionError(f"rank {RANK}: {what}: got {got!r}, want {want!r}")
        self.count += 1


def t(array):
    return torch.from_numpy(np.array(array, copy=True))


def check_reductions(check, dtype, size):
    for op in ops_for(dtype):
        small = op is ReduceOp.PRODUCT
        everyone = [values(rank, dtype, size, 1, small) for rank in range(WORLD)]
        want = expected_reduction(everyone, op)
        tensor = t(everyone[RANK])
        dist.all_reduce(tensor, op=op)
        check.equal(tensor, want, f"all_reduce {op} {np.dtype(dtype)} x{size}")
        tensor = t(everyone[RANK])
        dist.reduce(tensor, dst=WORLD - 1, op=op)
        if RANK == WORLD - 1:
            check.equal(tensor, want, f"reduce {op} {np.dtype(dtype)} x{size}")
    for op in ops_for(dtype):
        blocks = [values(rank, dtype, size * WORLD, 2, op is ReduceOp.PRODUCT)
                  for rank in range(WORLD)]
        want = expected_reduction(blocks, op).reshape(WORLD, size)[RANK]
        out = t(np.zeros(size, dtype))
        dist.reduce_scatter_tensor(out, t(blocks[RANK]), op=op)
        check.equal(out, want, f"reduce_scatter_tensor {op} {np.dtype(dtype)} x{size}")
        if op in (ReduceOp.SUM, ReduceOp.MIN):
            out = t(np.zeros(size, dtype))
            dist.reduce_scatter(out, [t(block) for block in blocks[RANK].reshape(WORLD, size)],
                                op=op)
            check.equal(out, want, f"reduce_scatter {op} {np.dtype(dtype)} x{size}")


def check_movement(check, dtype, size):
    everyone = [values(rank, dtype, size, 3) for rank in range(WORLD)]
    src = size % WORLD
    tensor = t(everyone[RANK])
    dist.broadcast(tensor, src=src)
    check.equal(tensor, everyone[src], f"broadcast {np.dtype(dtype)} x{size}")

    outputs = [t(np.zeros(size, dtype)) for _ in range(WORLD)]
    dist.all_gather(outputs, t(everyone[RANK]))
    for rank in range(WORLD):
        check.equal(outputs[rank], everyone[rank], f"all_gather {np.dtype(dtype)} x{size}")
    stacked = t(np.zeros((WORLD, size), dtype))
    dist.all_gather_into_tensor(stacked, t(everyone[RANK]))
    check.equal(stacked, np.stack(everyone), f"all_gather_into_tensor {np.dtype(dtype)} x{size}")

    gathered = [t(np.zeros(size, dtype)) for _ in range(WORLD)] if RANK == 0 else None
    dist.gather(t(everyone[RANK]), gathered, dst=0)
    if RANK == 0:
        for rank in range(WORLD):
            check.equal(gathered[rank], everyone[rank], f"gather {np.dtype(dtype)} x{size}")
    pieces = [values(rank, dtype, size, 4) for rank in range(WORLD)]
    out = t(np.zeros(size, dtype))
    dist.scatter(out, [t(piece) for piece in pieces] if RANK == WORLD - 1 else None, src=WORLD - 1)
    check.equal(out, pieces[RANK], f"scatter {np.dtype(dtype)} x{size}")

    sent = [values(RANK * WORLD + peer, dtype, size, 5) for peer in range(WORLD)]
    received = [t(np.zeros(size, dtype)) for _ in range(WORLD)]
    dist.all_to_all(received, [t(block) for block in sent])
    for peer in range(WORLD):
        check.equal(received[peer], values(peer * WORLD + RANK, dtype, size, 5),
                    f"all_to_all {np.dtype(dtype)} x{size}")

    if WORLD > 1:
        right, left = (RANK + 1) % WORLD, (RANK - 1) % WORLD
        inbox = t(np.zeros(size, dtype))
        dist.send(t(everyone[RANK]), dst=right, tag=size)
        assert dist.recv(inbox, src=left, tag=size) == left
        check.equal(inbox, everyone[left], f"send/recv {np.dtype(dtype)} x{size}")
        inbox = t(np.zeros(size, dtype))
        works = dist.batch_isend_irecv([dist.P2POp(dist.isend, t(everyone[RANK]), right, tag=7),
                                        dist.P2POp(dist.irecv, inbox, left, tag=7)])
        for work in works:
            work.wait()
        check.equal(inbox, everyone[left], f"isend/irecv {np.dtype(dtype)} x{size}")


def check_async_and_groups(check):
    everyone = [values(rank, np.float64, 3001, 6) for rank in range(WORLD)]
    tensors = [t(everyone[RANK]) for _ in range(4)]
    works = [dist.all_reduce(tensor, async_op=True) for tensor in tensors]
    for work in works:
        work.wait(timeout=30)
        assert work.is_completed()
    for tensor in tensors:
        check.equal(tensor, functools.reduce(np.add, everyone), "async all_reduce")
    tensor = t(everyone[RANK])
    future = dist.all_reduce(tensor, async_op=True).get_future()
    (result,) = future.then(lambda done: done.value()).wait()
    assert result is tensor
    check.equal(tensor, functools.reduce(np.add, everyone), "all_reduce future")
    if WORLD > 1:
        check_async_waits_for_slow_peer(check, everyone)
    outputs = [t(np.zeros(3001)) for _ in range(WORLD)]
    dist.all_gather(outputs, t(everyone[RANK]), async_op=True).wait()
    for rank in range(WORLD):
        check.equal(outputs[rank], everyone[rank], "async all_gather")

    members = list(range(0, WORLD, 2))
    group = dist.new_group(members)
    tensor = t(everyone[RANK])
    dist.all_reduce(tensor, group=group)
    if RANK in members:
        assert dist.get_rank(group) == members.index(RANK)
        check.equal(tensor, functools.reduce(np.add, [everyone[rank] for rank in members]),
                    "all_reduce on new_group")
    else:
        assert dist.get_rank(group) == -1
        check.equal(tensor, everyone[RANK], "non-member tensor untouched")
    dist.barrier()

    objects = [{"rank": RANK, "name": "x" * RANK, "pair": (1, 2.5)}, None]
    dist.broadcast_object_list(objects, src=WORLD - 1)
    assert objects == [{"rank": WORLD - 1, "name": "x" * (WORLD - 1), "pair": (1, 2.5)}, None]
    gathered = [None] * WORLD
    dist.all_gather_object(gathered, ["r", RANK, b"\0" * RANK])
    assert gathered == [["r", rank, b"\0" * rank] for rank in range(WORLD)], gathered
    check.count += 2


def check_async_waits_for_slow_peer(check, everyone):
    """An async all_reduce cannot finish before rank 1 joins; wait(timeout) says so."""
    tensor = t(everyone[RANK])
    if RANK == 1:
        time.sleep(0.5)
    work = dist.all_reduce(tensor, async_op=True)
    if RANK != 1:
        assert not work.is_completed()
        try:
            work.wait(timeout=0.05)
        except RuntimeError as error:
            assert "did not finish" in str(error)
        else:
            raise AssertionError("Work.wait(timeout) returned before rank 1 joined")
    assert work.wait()
    check.equal(tensor, functools.reduce(np.add, everyone), "async all_reduce with a slow peer")


def check_array_api(check):
    """disttorch.comm on raw numpy arrays, the way DDP drives it: many async buckets in flight."""
    import disttorch.comm as comm
    buckets = [values(RANK, np.float32, size, 9) for size in (0, 1, 4099, 70_001)]
    originals = [bucket.copy() for bucket in buckets]
    works = [comm.all_reduce(bucket, async_op=True) for bucket in buckets]
    for work, bucket, original in zip(works, buckets, originals):
        work.wait()
        want = functools.reduce(np.add, [values(rank, np.float32, original.size, 9)
                                         for rank in range(WORLD)])
        check.equal(bucket, want, "comm.all_reduce on a numpy bucket")
    grid = np.stack([values(RANK, np.int64, 10, 10)] * 3, axis=1)
    column = grid[:, 1]
    assert not column.flags.c_contiguous
    comm.all_reduce(column, op=ReduceOp.MAX)
    check.equal(grid[:, 1], functools.reduce(np.maximum, [values(rank, np.int64, 10, 10)
                                                           for rank in range(WORLD)]),
                "strided view reduced in place")
    check.equal(grid[:, 0], values(RANK, np.int64, 10, 10), "neighbouring column untouched")


def check_ring_consistency(check):
    """Random floats: every rank must hold bit-identical sums, close to numpy's."""
    everyone = [np.random.default_rng(rank).standard_normal(40_001).astype(np.float32)
                for rank in range(WORLD)]
    tensor = t(everyone[RANK])
    dist.all_reduce(tensor)
    results = [t(np.zeros(40_001, np.float32)) for _ in range(WORLD)]
    dist.all_gather(results, tensor)
    for result in results:
        check.equal(result, tensor.numpy(), "identical all_reduce result on every rank")
    np.testing.assert_allclose(tensor.numpy(), np.sum(everyone, axis=0), rtol=1e-5, atol=1e-5)


def scenario_matrix():
    dist.init_process_group("zmq", timeout=60)
    assert dist.is_initialized() and dist.get_rank() == RANK and dist.get_world_size() == WORLD
    check = Checker()
    for dtype in DTYPES:
        for size in SIZES:
            check_reductions(check, dtype, size)
            check_movement(check, dtype, size)
    check_async_and_groups(check)
    check_array_api(check)
    check_ring_consistency(check)
    dist.destroy_process_group()
    assert not dist.is_initialized()
    check_reinit(check)
    report(rank=RANK, checks=check.count)


def check_reinit(check):
    """A second init_process_group in the same processes, right after destroy."""
    dist.init_process_group("zmq", timeout=60)
    tensor = t(np.full(5, RANK + 1, np.int64))
    dist.all_reduce(tensor)
    check.equal(tensor, np.full(5, WORLD * (WORLD + 1) // 2, np.int64), "all_reduce after re-init")
    assert dist.get_backend() == "zmq" and dist.get_process_group_ranks(None) == list(range(WORLD))
    rows = t(np.zeros((WORLD * 2, 3), np.float32))
    dist.all_to_all_single(rows, t(np.full((WORLD * 2, 3), RANK, np.float32)))
    check.equal(rows, np.repeat(np.arange(WORLD, dtype=np.float32), 2)[:, None].repeat(3, 1),
                "all_to_all_single")
    sends = [RANK + peer + 1 for peer in range(WORLD)]
    receives = [peer + RANK + 1 for peer in range(WORLD)]
    source = np.concatenate([np.full(rows, RANK * 100 + peer, np.int32)
                             for peer, rows in enumerate(sends)])
    target = t(np.zeros(sum(receives), np.int32))
    dist.all_to_all_single(target, t(source), receives, sends)
    check.equal(target, np.concatenate([np.full(rows, peer * 100 + RANK, np.int32)
                                        for peer, rows in enumerate(receives)]),
                "all_to_all_single with uneven splits")
    outbox = [f"to {peer}" for peer in range(WORLD)] if RANK == 0 else None
    inbox = [None]
    dist.scatter_object_list(inbox, outbox, src=0)
    assert inbox == [f"to {RANK}"], inbox
    dist.monitored_barrier()
    dist.destroy_process_group()


def scenario_large():
    """Default piece sizes: multi-megabyte arrays through the ring and the chain."""
    address = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    dist.init_process_group("gloo", init_method=address, rank=RANK, world_size=WORLD, timeout=120)
    check = Checker()
    count = 5_000_003
    everyone = [np.arange(count, dtype=np.float32) % 97 * (rank + 1) for rank in range(WORLD)]
    tensor = t(everyone[RANK])
    dist.all_reduce(tensor)
    check.equal(tensor, functools.reduce(np.add, everyone), "large all_reduce")
    tensor = t(everyone[RANK])
    dist.broadcast(tensor, src=WORLD - 1)
    check.equal(tensor, everyone[WORLD - 1], "large broadcast")
    out = t(np.zeros(count // WORLD * WORLD // WORLD, np.float32))
    source = t(everyone[RANK][:out.numel() * WORLD])
    dist.reduce_scatter_tensor(out, source)
    want = functools.reduce(np.add, [e[:out.numel() * WORLD] for e in everyone])
    check.equal(out, want.reshape(WORLD, -1)[RANK], "large reduce_scatter_tensor")
    tensor = t(everyone[RANK])
    dist.reduce(tensor, dst=0, op=ReduceOp.MAX)
    if RANK == 0:
        check.equal(tensor, functools.reduce(np.maximum, everyone), "large reduce")
    dist.destroy_process_group()
    report(rank=RANK, checks=check.count)


def _catch(action):
    start = time.monotonic()
    try:
        action()
    except (RuntimeError, TypeError) as error:
        return {"type": type(error).__name__, "message": str(error),
                "seconds": time.monotonic() - start, "failed_rank": getattr(error, "rank", None)}
    return None


def scenario_kill():
    """Rank 1 dies (SIGKILL) in the middle of a stream of all_reduces."""
    dist.init_process_group("zmq", timeout=60)
    tensor = t(np.zeros(1 << 18, np.float32))
    if RANK == 1:
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    last = [time.monotonic()]

    def loop():
        # Rank 2 goes through the background thread, so its error surfaces from Work.wait.
        while True:
            work = dist.all_reduce(tensor, async_op=RANK == 2)
            if work is not None:
                work.wait()
            last[0] = time.monotonic()
    error = _catch(loop)
    error["since_last_success"] = time.monotonic() - last[0]
    report(rank=RANK, **error)


def scenario_send_finds_peer_gone():
    """Rank 2 waits on rank 0 inside an all_reduce; rank 1 dies; rank 0 enters only then, so its
    first send finds rank 1 gone, and it reports that and exits."""
    dist.init_process_group("zmq", timeout=60)
    pids = t(np.zeros(WORLD, np.int64))
    pids[RANK] = os.getpid()
    dist.all_reduce(pids)
    tensor = t(np.zeros(1 << 18, np.float32))
    if RANK == 1:
        time.sleep(0.3)  # rank 2 is inside the all_reduce by now
        os.kill(os.getpid(), signal.SIGKILL)
    if RANK == 0:
        while _alive(int(pids[1])):
            time.sleep(0.005)
    report(rank=RANK, **_catch(lambda: dist.all_reduce(tensor)))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def scenario_p2p_record():
    """Rank 1 receives two of rank 0's sends, then waits for a third that never comes (its own
    timeout is short; rank 0's is not, so it waits for rank 1's all-clear)."""
    dist.init_process_group("zmq", timeout=2 if RANK == 1 else 60)
    buffer = t(np.zeros(3, np.float32))
    if RANK == 0:
        for _ in range(2):
            dist.send(t(np.ones(3, np.float32)), dst=1, tag=5)
        dist.recv(buffer, src=1, tag=9)
        report(rank=RANK)
        return
    for _ in range(2):
        dist.recv(buffer, src=0, tag=5)
    error = _catch(lambda: dist.recv(buffer, src=0, tag=5))
    dist.send(buffer, dst=0, tag=9)
    report(rank=RANK, error=error)


def scenario_mismatch():
    dist.init_process_group("zmq", timeout=30)
    other_group = dist.new_group(list(range(WORLD)))
    shape = _catch(lambda: dist.all_reduce(t(np.ones(12 if RANK == 2 else 10, np.float32))))
    op = _catch(lambda: dist.all_reduce(t(np.ones(4)), group=other_group,
                                        op=ReduceOp.MAX if RANK == 1 else ReduceOp.SUM))
    after = _catch(lambda: dist.all_reduce(t(np.ones(10, np.float32))))
    report(rank=RANK, shape=shape, op=op, after=after)


def scenario_stall():
    dist.init_process_group("zmq", timeout=1)
    if RANK == 1:
        time.sleep(2.5)
    report(rank=RANK, error=_catch(lambda: dist.all_reduce(t(np.ones(100)))))


def _verified_all_reduces_until(stop_here):
    """Known all_reduces, each verified, round after round until ``stop_here(rounds)`` is true on
    some rank; returns how many checks passed."""
    check = Checker()
    rounds = 0
    while True:
        stop = t(np.array([stop_here(rounds)]))
        dist.all_reduce(stop, op=ReduceOp.MAX)
        if stop.item():
            return check.count
        for size in (10, 100_000):
            everyone = [values(rank, np.float32, size, rounds) for rank in range(WORLD)]
            tensor = t(everyone[RANK])
            dist.all_reduce(tensor)
            check.equal(tensor, functools.reduce(np.add, everyone), "all_reduce under attack")
        rounds += 1
        time.sleep(0.02)


def scenario_steady():
    """Verified all_reduces for a few seconds while a stranger interferes."""
    dist.init_process_group("zmq", timeout=60)
    deadline = time.monotonic() + float(os.environ.get("STEADY_SECONDS", "3"))
    checks = _verified_all_reduces_until(lambda rounds: time.monotonic() > deadline)
    dist.destroy_process_group()
    report(rank=RANK, checks=checks)


def scenario_until_stopped():
    """Verified all_reduces until the test sets the store key flood/stop; each rank sets
    flood/ready/RANK once warm, so memory measured from then on is the attack's."""
    dist.init_process_group("zmq", timeout=60)
    import disttorch.comm as comm
    store = comm.world().store

    def stop_here(rounds):
        if rounds == 20:
            store.set(f"flood/ready/{RANK}", "1")
        return RANK == 0 and store.check(["flood/stop"])

    checks = _verified_all_reduces_until(stop_here)
    dist.destroy_process_group()
    report(rank=RANK, checks=checks)


def scenario_shm_fallback():
    """Rank 1 cannot get a file for arrays over 1 MiB: those go over the sockets, the rest stay
    (all_reduce and reduce_scatter alike)."""
    if RANK == 1:
        import disttorch.comm.shm as shm
        real_slot_bytes = shm._slot_bytes
        # A file far larger than any /dev/shm: fallocate fails like on a full one.
        shm._slot_bytes = lambda nbytes: 1 << 60 if nbytes > 1 << 20 else real_slot_bytes(nbytes)
    dist.init_process_group("zmq", timeout=60)
    check = Checker()
    for salt, size in enumerate([1 << 16, 1 << 20, 1 << 16, 1 << 20, 1 << 18]):
        everyone = [values(rank, np.float32, size, salt) for rank in range(WORLD)]
        tensor = t(everyone[RANK])
        dist.all_reduce(tensor)
        check.equal(tensor, functools.reduce(np.add, everyone), f"all_reduce x{size}")
        out = t(np.zeros(size // WORLD, np.float32))
        dist.reduce_scatter_tensor(out, t(everyone[RANK]))
        check.equal(out, functools.reduce(np.add, everyone).reshape(WORLD, -1)[RANK],
                    f"reduce_scatter_tensor x{size}")
    import disttorch.comm as comm
    sockets_from = comm.world().default_group._shm._limit_bytes
    dist.destroy_process_group()
    report(rank=RANK, checks=check.count, sockets_from=sockets_from)


def scenario_shm_one_rank_off():
    """Rank 1 turned shared memory off: the first large all_reduce is a mismatch, not garbage."""
    if RANK == 1:
        os.environ["DISTTORCH_SHM"] = "0"
    dist.init_process_group("zmq", timeout=30)
    report(rank=RANK, error=_catch(lambda: dist.all_reduce(t(np.ones(1 << 18, np.float32)))))


def scenario_early_sends():
    """Async all_reduces that send everything as they are issued (straight to the peers) mixed with
    ones the communication thread runs later (the ring), some deferred to Work.wait(), ranks skewed:
    messages of later collectives arrive before earlier ones finish, and every result is exact."""
    import disttorch.comm as comm
    dist.init_process_group("zmq", timeout=60)
    group = comm.world().default_group
    check = Checker()
    sizes = [1000, 200_000, 3000, 150_000, 10]  # direct, ring, direct, ring, direct (3 ranks)
    for salt in range(6):
        everyone = [[values(rank, np.float32, size, salt * 10 + index) for rank in range(WORLD)]
                    for index, size in enumerate(sizes)]
        arrays = [mine[RANK].copy() for mine in everyone]
        works = []
        for array in arrays:
            works.append(group.all_reduce(array, ReduceOp.SUM, async_op=True, deferred=salt % 2 == 1))
            if salt >= 4:
                time.sleep(0.01 * RANK)
        for work in works:
            work.wait()
        for index, array in enumerate(arrays):
            check.equal(array, functools.reduce(np.add, everyone[index]), f"all_reduce x{sizes[index]}")
    dist.destroy_process_group()
    report(rank=RANK, checks=check.count)


def scenario_late_rank():
    """The last rank starts LATE_SECONDS after the others, longer than the handshake timeout."""
    if RANK == WORLD - 1:
        time.sleep(float(os.environ["LATE_SECONDS"]))
    dist.init_process_group("zmq", timeout=60)
    tensor = t(np.ones(5))
    dist.all_reduce(tensor)
    dist.barrier()
    dist.destroy_process_group()
    report(rank=RANK, total=tensor.tolist())


def scenario_init_only():
    dist.init_process_group("zmq", timeout=2)
    dist.destroy_process_group()


def scenario_reinit_skew():
    """Rank 0 reaches destroy_process_group only after another rank already re-joined."""
    dist.init_process_group("zmq", timeout=30)
    dist.all_reduce(t(np.ones(3)))
    if RANK == 0:
        import disttorch.comm as comm
        store = comm.world().store
        # Each init adds one per rank: past WORLD means someone is in its second init.
        while store.add("disttorch/init_count", 0) <= WORLD:
            time.sleep(0.05)
    dist.destroy_process_group()
    dist.init_process_group("zmq", timeout=30)
    tensor = t(np.full(4, RANK + 1.0))
    dist.all_reduce(tensor)
    dist.destroy_process_group()
    report(rank=RANK, total=tensor.tolist())


def scenario_raise_while_peer_waits():
    """Rank 1 raises out of the script while rank 0 waits for it in a barrier.

    Rank 1 freezes the transport's clock first: an exit path that waited for
    rank 0 with a deadline would then never end, so this checks that leaving
    waits for nobody, without measuring any time.
    """
    dist.init_process_group("zmq", timeout=600)
    if RANK == 1:
        import disttorch.comm.transport as transport

        class FrozenClock:
            def __getattr__(self, name):
                return getattr(time, name)

            @staticmethod
            def monotonic():
                return 0.0
        transport.time = FrozenClock()
        raise RuntimeError("rank 1 gives up")
    report(rank=RANK, error=_catch(dist.barrier))


def scenario_init_default_timeout():
    dist.init_process_group("zmq")
    dist.destroy_process_group()


def scenario_stale_group_and_int_avg():
    dist.init_process_group("zmq", timeout=30)
    int_avg = _catch(lambda: dist.all_reduce(t(np.ones(4, np.int64)), op=ReduceOp.AVG))
    kept = dist.new_group(list(range(WORLD)))
    dist.destroy_process_group()
    report(rank=RANK, int_avg=int_avg,
           stale=_catch(lambda: dist.all_reduce(t(np.ones(3)), group=kept)),
           stale_send=_catch(lambda: kept.send(np.ones(2), (RANK + 1) % WORLD)))


def scenario_cuda():
    """CUDA tensors go through host staging; results land back on the GPU."""
    dist.init_process_group("nccl", timeout=60)
    check = Checker()
    everyone = [values(rank, np.float32, 70_001, 8) for rank in range(WORLD)]
    tensor = torch.tensor(everyone[RANK], device="cuda")
    dist.all_reduce(tensor)
    assert tensor.device.type == "cuda"
    check.equal(tensor.cpu(), functools.reduce(np.add, everyone), "cuda all_reduce")
    tensor = torch.tensor(everyone[RANK], device="cuda")
    dist.broadcast(tensor, src=0)
    check.equal(tensor.cpu(), everyone[0], "cuda broadcast")
    outputs = [torch.zeros(70_001, device="cuda") for _ in range(WORLD)]
    dist.all_gather(outputs, torch.tensor(everyone[RANK], device="cuda"))
    for rank in range(WORLD):
        check.equal(outputs[rank].cpu(), everyone[rank], "cuda all_gather")
    dist.destroy_process_group()
    report(rank=RANK, checks=check.count)


def _status_kib(field):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def _shm_mapped_bytes():
    """Bytes of this process's address space mapped from disttorch's /dev/shm files."""
    total = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            if "/dev/shm/disttorch-" in line:
                low, high = (int(bound, 16) for bound in line.split()[0].split("-"))
                total += high - low
    return total


def scenario_shm_peak_rss():
    """Large float32 all_reduces through shared memory: this rank's peak RSS while they run,
    as a multiple of the tensor (which counts as 1x), and the /dev/shm it maps with two groups
    and after destroy_process_group."""
    dist.init_process_group("zmq", timeout=60)
    # Starts the connections and any one-time state, so what follows measures the collective.
    dist.all_reduce(t(np.ones(1 << 16, np.float32)))
    count = int(os.environ["SHM_RSS_BYTES"]) // 4
    tensor = torch.from_numpy(np.full(count, RANK + 1, np.float32))
    try:
        # Resets VmHWM to the current RSS, which already holds the tensor.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError as error:
        report(rank=RANK, skip=f"cannot reset the peak RSS: {error}")
        return
    before_kib = _status_kib("VmRSS")
    # Several in a row: a pool that alternates between buffers touches them all by the second.
    for _ in range(3):
        tensor.numpy()[...] = RANK + 1
        dist.all_reduce(tensor)
        # min and max allocate nothing, unlike a comparison
        assert tensor.numpy().min() == tensor.numpy().max() == WORLD * (WORLD + 1) // 2
    peak_ratio = 1 + (_status_kib("VmHWM") - before_kib) * 1024 / (count * 4)
    # A group object kept past destroy_process_group must not keep its files mapped.
    kept = dist.new_group(list(range(WORLD)))
    dist.all_reduce(t(np.ones(1 << 18, np.float32)), group=kept)
    mapped_during = _shm_mapped_bytes()
    dist.destroy_process_group()
    report(rank=RANK, peak_ratio=peak_ratio, mapped_during=mapped_during,
           mapped_after=_shm_mapped_bytes())


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"]()
