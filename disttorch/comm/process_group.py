"""Process groups over the ZeroMQ transport, working on raw ndarrays.

A ``ProcessGroup`` numbers its collectives (the sequence number that goes into
every header), runs them through the shared ``Executor`` and turns arrays of
any layout or device into the flat, contiguous host buffers the algorithms in
collectives.py expect. Ranks passed to its methods are group ranks.
"""
import enum
import itertools
import os
import urllib.parse
import weakref
from datetime import timedelta

import msgpack
import numpy as np

from . import auth, cluster_env, flight_recorder, hierarchy, shm
from . import collectives as algo
from .errors import DistBackendError, DistError, DistStoreError
from .store import TCPStore, as_seconds
from .transport import DATA, P2P_GROUP, OpContext, Transport
from .work import Executor

DEFAULT_TIMEOUT = timedelta(minutes=30)


class ReduceOp(enum.Enum):
    """torch.distributed.ReduceOp: ``dist.ReduceOp.SUM`` and friends."""
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"


def reduce_op_name(op):
    if isinstance(op, ReduceOp):
        return op.value
    name = getattr(op, "name", op)
    if isinstance(name, str) and name.lower() in algo.REDUCE_UFUNCS:
        return name.lower()
    raise ValueError(f"unknown reduce op {op!r}; use one of {[member.name for member in ReduceOp]}")


class Channel:
    """One collective's view of the transport: group ranks in, global ranks out."""
    __slots__ = ("_transport", "_members", "_ctx", "_header", "size", "rank", "shm")

    def __init__(self, transport, members, rank, ctx, header, shm=None):
        self._transport = transport
        self._members = members
        self._ctx = ctx
        self._header = header
        self.size = len(members)
        self.rank = rank
        # This group's shm.SharedSegments when every member shares this host, else None.
        self.shm = shm

    def others(self):
        return [peer for peer in range(self.size) if peer != self.rank]

    def header_for(self, count):
        """This collective's header for one message of ``count`` elements (all_to_all)."""
        fields = msgpack.unpackb(self._header)
        fields[5] = count
        return msgpack.packb(fields)

    def variant_header(self, variant):
        """This collective's header with the op renamed ``op[variant]`` (another algorithm's
        messages), so ranks that chose different algorithms see a mismatch, not garbage."""
        fields = msgpack.unpackb(self._header)
        fields[3] = f"{fields[3]}[{variant}]"
        return msgpack.packb(fields)

    def send(self, peer, payload, track=False, header=None):
        return self._transport.send(self._members[peer], header or self._header, payload, track)

    def recv(self, peer, header=None):
        return self._transport.recv(self._members[peer], header or self._header, self._ctx)

    def raise_if_aborted(self):
        self._transport.raise_if_aborted(self._ctx, drain=True)

    def wait_sent(self, trackers):
        self._transport.wait_sent([tracker for tracker in trackers if tracker is not None],
                                  self._ctx)


def _host_buffer(array):
    """(flat contiguous numpy buffer, copy_back or None) for a numpy or cupy array.

    Contiguous numpy arrays are used in place; cupy arrays are staged through
    host memory, strided arrays through a contiguous copy.
    """
    if isinstance(array, np.ndarray):
        if array.flags.c_contiguous:
            return array.reshape(-1), None
        flat = np.ascontiguousarray(array).reshape(-1)
        return flat, lambda: array.__setitem__(Ellipsis, flat.reshape(array.shape))
    if hasattr(array, "__cuda_array_interface__"):
        from disttorch.core.backend import get_array_module
        flat = array.get().reshape(-1)
        device_module = get_array_module(array)
        return flat, lambda: array.__setitem__(
            Ellipsis, device_module.asarray(flat.reshape(array.shape)))
    raise TypeError(f"collectives need numpy or cupy arrays, got {type(array).__name__}")


def _source_buffer(array):
    return _host_buffer(array)[0]


class ProcessGroup:
    """A set of global ranks that run collectives together (group ranks 0..size-1)."""

    def __init__(self, world, group_id, ranks):
        self._world = world
        self.group_id = group_id
        self.ranks = list(ranks)
        self.rank = self.ranks.index(world.rank)
        self.size = len(self.ranks)
        self._seq = 0
        # next() is one C call: user threads sending at once never share a number.
        self._p2p_seq = itertools.count(1)
        self._failure = None
        self._recorder = flight_recorder.recorder()
        self._dumped_record = False
        self._shm = (shm.SharedSegments(self.size, self.rank)
                     if shm.available(world.transport, self.ranks) else None)
        if self._shm is not None:
            world.shared_segments.add(self._shm)
        self._hierarchy = False  # not planned yet; then None or a HostHierarchy

    def _hierarchy_for(self, flat):
        """The host hierarchy when it applies to all-reducing ``flat`` (see hierarchy.py)."""
        if self._hierarchy is False:
            planned = hierarchy.plan(self._world, self)
            self._hierarchy = None if planned is None else hierarchy.HostHierarchy(
                self, *planned, lambda group_id, ranks: ProcessGroup(self._world, group_id, ranks))
        if self._hierarchy is not None and self._hierarchy.usable_for(flat):
            return self._hierarchy
        return None

    def open_channel(self, op, dtype, shape, reduce_op):
        """The next collective's channel, for running it inside a collective of a parent group
        (this group's own executor is not involved)."""
        self._seq += 1
        header = msgpack.packb([DATA, self.group_id, self._seq, op, np.dtype(dtype).str, list(shape),
                                reduce_op or ""])
        ctx = OpContext(self.group_id, self.ranks, self._seq, op, self._world.timeout)
        return Channel(self._world.transport, self.ranks, self.rank, ctx, header, self._shm)

    def __repr__(self):
        return f"ProcessGroup(id={self.group_id}, ranks={self.ranks}, rank={self.rank})"

    def _run(self, op, dtype, shape, reduce_op, algorithm, async_op, start=None, deferred=False,
             input_sizes=None):
        """Number the collective, build its header, record it in the flight recorder and run
        ``algorithm(channel)``.

        ``shape`` is the array shape every rank must agree on (or an element
        count when per-message counts are checked instead, as in all_to_all).

        ``start(channel)``, given for an async collective, runs right here in the
        caller's thread: it may send everything this rank contributes and return
        ``rest(channel)`` to run in order with the other collectives (or None to run
        ``algorithm`` there instead). It may receive only while the executor is idle,
        as the sockets it reads are then the caller's alone. With ``deferred``,
        ``rest`` waits for Work.wait() and runs in the waiting thread, so no second
        thread competes for the cores; a collective that cannot start early then
        runs to completion right away.

        ``input_sizes`` (the shapes of this rank's inputs) is for the flight recorder when the
        input is not one array shaped ``shape``.
        """
        self._check_alive(op)
        if self._failure is not None:
            raise DistBackendError(
                f"process group {self.group_id} cannot run {op}: an earlier collective failed "
                f"({self._failure}). Destroy and re-create the process group")
        self._seq += 1
        seq = self._seq
        signature = list(shape) if isinstance(shape, tuple) else shape
        header = msgpack.packb([DATA, self.group_id, seq, op, np.dtype(dtype).str, signature,
                                reduce_op or ""])
        transport = self._world.transport
        description = f"{op} #{seq} of group {self.group_id}"
        started = {}
        entry = self._recorder.record(
            self.group_id, self.ranks, seq, op, input_sizes or (shape,), (dtype,), reduce_op)

        def channel():
            if "channel" not in started:
                ctx = OpContext(self.group_id, self.ranks, seq, op, self._world.timeout)
                started["channel"] = Channel(transport, self.ranks, self.rank, ctx, header, self._shm)
            return started["channel"]

        def guarded(body):
            ch = channel()
            transport.progress[self.group_id] = (seq, op, True)
            flight_recorder.started(entry)
            try:
                transport.raise_if_aborted(ch._ctx)
                return body(ch)
            except DistError as error:
                # Errors found here without a peer's abort (a send that finds a peer gone)
                # must still reach the others, or a peer still waiting on this rank would
                # blame it for leaving instead of naming the rank that failed.
                self._failure = transport.abort(ch._ctx, error)
                raise
            except Exception as error:
                # Anything else (a bad buffer, a numpy error) would leave the peers
                # waiting for this rank: tell them, then report the original error.
                self._failure = transport.abort(ch._ctx, DistBackendError(
                    f"rank {transport.rank} failed inside {ch._ctx.name()}: {error!r}"))
                raise

        def job():
            rest = started.get("rest") or algorithm
            try:
                guarded(rest)
                transport.raise_if_aborted(channel()._ctx, drain=True)
            except BaseException as error:
                self._record_failure(entry, error)
                raise
            finally:
                transport.progress[self.group_id] = (seq, op, False)
            flight_recorder.completed(entry)

        executor = self._world.executor
        if start is not None and async_op:
            try:
                started["rest"] = guarded(start)
            except BaseException as error:
                self._record_failure(entry, error)
                raise
            if started["rest"] is None and deferred:
                return executor.run_now(job, description)
            return executor.run(job, description, True, deferred and started["rest"] is not None)
        return executor.run(job, description, async_op)

    def _record_failure(self, entry, error):
        flight_recorder.failed(entry, error)
        # The group's first failure writes the record; collectives queued behind it fail too
        # and would only write the same story again.
        if isinstance(error, DistError) and not self._dumped_record:
            self._dumped_record = True
            flight_recorder.dump_on_failure(error)

    # ------------------------------------------------------------- collectives
    def all_reduce(self, array, op=ReduceOp.SUM, async_op=False, deferred=False):
        """Reduce ``array`` across the group in place; returns a Work if async_op.

        An async all_reduce that goes straight to its peers (two ranks, or a small
        array) has sent all its data before this returns. ``deferred`` (with
        async_op) leaves receiving and folding to Work.wait(), in the waiting thread.
        """
        op_name = reduce_op_name(op)
        algo.check_reduce_op(op_name, array.dtype)
        flat, copy_back = _host_buffer(array)

        def run(ch):
            hosts = self._hierarchy_for(flat)
            if hosts is not None:
                hosts.start_all_reduce(flat, op_name)()
            else:
                algo.all_reduce(ch, flat, op_name)
            if copy_back:
                copy_back()

        def start(ch):
            hosts = self._hierarchy_for(flat)
            if hosts is not None and not self._world.executor.idle():
                # Its first phase receives; the thread is receiving for an earlier collective.
                return None
            if hosts is not None:
                finish = hosts.start_all_reduce(flat, op_name)
                rest = lambda channel: finish()  # noqa: E731
            else:
                rest = algo.start_all_reduce(ch, flat, op_name)
            if rest is None or copy_back is None:
                return rest
            return lambda channel: (rest(channel), copy_back())
        return self._run("all_reduce", array.dtype, array.shape, op_name, run, async_op, start, deferred)

    def reduce(self, array, dst, op=ReduceOp.SUM, async_op=False):
        op_name = reduce_op_name(op)
        algo.check_reduce_op(op_name, array.dtype)
        flat, copy_back = _host_buffer(array)

        def run(ch):
            algo.reduce(ch, flat, op_name, dst)
            if copy_back and ch.rank == dst:
                copy_back()
        return self._run("reduce", array.dtype, array.shape, op_name, run, async_op)

    def broadcast(self, array, src, async_op=False):
        flat, copy_back = _host_buffer(array)

        def run(ch):
            algo.broadcast(ch, flat, src)
            if copy_back and ch.rank != src:
                copy_back()
        return self._run("broadcast", array.dtype, array.shape, None, run, async_op)

    def all_gather(self, output, array, async_op=False):
        """``output`` holds size * array.size elements, filled in group-rank order."""
        self._check_output_size("all_gather", output, array.size * self.size)
        out, copy_back = _host_buffer(output)
        mine = _source_buffer(array)

        def run(ch):
            algo.all_gather(ch, out, mine)
            if copy_back:
                copy_back()
        return self._run("all_gather", array.dtype, array.shape, None, run, async_op)

    def reduce_scatter(self, output, array, op=ReduceOp.SUM, async_op=False):
        """``array`` holds size * output.size elements; block r's reduction lands on rank r."""
        self._check_output_size("reduce_scatter", array, output.size * self.size)
        op_name = reduce_op_name(op)
        algo.check_reduce_op(op_name, array.dtype)
        out, copy_back = _host_buffer(output)
        source = _source_buffer(array)

        def run(ch):
            algo.reduce_scatter(ch, out, source, op_name)
            if copy_back:
                copy_back()
        return self._run("reduce_scatter", array.dtype, output.shape, op_name, run, async_op,
                         input_sizes=(array.shape,))

    def gather(self, array, outputs, dst, async_op=False):
        """``outputs`` (on ``dst`` only) is a list of size arrays shaped like ``array``."""
        mine = _source_buffer(array)
        staged = [_host_buffer(output) for output in outputs or ()] if self.rank == dst else []
        if self.rank == dst:
            self._check_list("gather", staged, mine.size)

        def run(ch):
            algo.gather(ch, [flat for flat, _ in staged], mine, dst)
            for _, copy_back in staged:
                if copy_back:
                    copy_back()
        return self._run("gather", array.dtype, array.shape, None, run, async_op)

    def scatter(self, output, inputs, src, async_op=False):
        """Rank r receives ``inputs[r]`` (a list given on ``src`` only) into ``output``."""
        out, copy_back = _host_buffer(output)
        blocks = [_source_buffer(block) for block in inputs or ()] if self.rank == src else []
        if self.rank == src:
            self._check_list("scatter", [(block, None) for block in blocks], out.size)

        def run(ch):
            algo.scatter(ch, out, blocks, src)
            if copy_back:
                copy_back()
        return self._run("scatter", output.dtype, output.shape, None, run, async_op)

    def all_to_all(self, outputs, inputs, async_op=False):
        """Rank r sends ``inputs[j]`` to rank j and receives rank j's into ``outputs[j]``."""
        if len(outputs) != self.size or len(inputs) != self.size:
            raise ValueError(f"all_to_all needs {self.size} input and output arrays (one per "
                             f"rank), got {len(inputs)} inputs and {len(outputs)} outputs")
        staged = [_host_buffer(output) for output in outputs]
        sources = [_source_buffer(block) for block in inputs]
        if staged[self.rank][0].size != sources[self.rank].size:
            raise ValueError(f"all_to_all on group rank {self.rank}: the block this rank keeps has "
                             f"{sources[self.rank].size} elements but its output slot holds "
                             f"{staged[self.rank][0].size}")

        def run(ch):
            algo.all_to_all(ch, [flat for flat, _ in staged], sources)
            for _, copy_back in staged:
                if copy_back:
                    copy_back()
        # Each message's header carries its own element count (splits may differ).
        return self._run("all_to_all", inputs[0].dtype, -1, None, run, async_op,
                         input_sizes=tuple(block.shape for block in inputs))

    def barrier(self, async_op=False):
        return self._run("barrier", np.uint8, (), None, algo.barrier, async_op)

    # ------------------------------------------------------------ point to point
    def send(self, array, dst, tag=0):
        """Send ``array`` to group rank ``dst``; returns once ZeroMQ owns the data."""
        self._check_alive("send")
        flat = _source_buffer(array)
        world = self._world
        header = msgpack.packb([DATA, P2P_GROUP, tag, "send", flat.dtype.str, flat.size, ""])
        peer = self.ranks[dst]

        def job():
            ctx = OpContext(P2P_GROUP, [peer], tag, f"send(tag={tag})", world.timeout)
            channel = Channel(world.transport, {0: peer}, None, ctx, header)
            trackers = []
            algo.send_array(channel, 0, flat, trackers)
            channel.wait_sent(trackers)
        world.executor.run(self._recorded_p2p("send", peer, tag, flat, job),
                           f"send to rank {peer}", False)

    def recv(self, array, src=None, tag=0):
        """Receive into ``array`` from group rank ``src`` (any rank if None); returns the sender."""
        self._check_alive("recv")
        out, copy_back = _host_buffer(array)
        world = self._world
        expected = [DATA, P2P_GROUP, tag, "send", out.dtype.str, out.size, ""]
        sources = {}
        peer = None if src is None else self.ranks[src]

        def job():
            ctx = OpContext(P2P_GROUP, [] if peer is None else [peer], tag,
                            f"recv(tag={tag})", world.timeout)
            sender, fields, first = world.transport.recv_p2p(peer, tag, ctx)
            if list(fields) != expected:
                raise world.transport.abort(ctx, DistBackendError(
                    f"recv on rank {world.rank} expected {out.dtype.name}[{out.size}] with "
                    f"tag {tag} but rank {sender} sent {np.dtype(fields[4]).name}[{fields[5]}]; "
                    "send and recv buffers must match in dtype and element count"))
            _receive_pieces(world.transport, sender, tag, ctx, out, first)
            if copy_back:
                copy_back()
            sources["rank"] = sender
        world.executor.run(self._recorded_p2p("recv", peer, tag, out, job),
                           f"recv from rank {src}", False)
        return self.ranks.index(sources["rank"])

    def _recorded_p2p(self, op, peer, tag, flat, body):
        """``body`` with its own flight-recorder entry (``peer`` a global rank or None)."""
        entry = self._recorder.record(self.group_id, self.ranks, next(self._p2p_seq), op,
                                      (flat.shape,), (flat.dtype,), None, peer=peer, tag=tag)

        def job():
            flight_recorder.started(entry)
            try:
                body()
            except BaseException as error:
                self._record_failure(entry, error)
                raise
            flight_recorder.completed(entry)
        return job

    def has_message(self, src, tag=0):
        """Whether ``recv(src, tag)`` would find its first message already here."""
        self._check_alive("has_message")
        peer = None if src is None else self.ranks[src]
        return self._world.executor.call(lambda: self._world.transport.has_p2p(peer, tag))

    def _check_alive(self, op):
        if self._world.closed:
            raise RuntimeError(
                f"process group {self.group_id} cannot run {op}: destroy_process_group() "
                "destroyed it; call init_process_group (and new_group) again and use the new "
                "group")

    def _check_output_size(self, op, array, expected):
        if array.size != expected:
            raise ValueError(f"{op} on a group of {self.size} ranks needs {expected} elements "
                             f"there, got {array.size}")

    def _check_list(self, op, staged, count):
        if len(staged) != self.size or any(flat.size != count for flat, _ in staged):
            raise ValueError(f"{op} needs a list of {self.size} arrays of {count} elements each "
                             f"on the root rank, got sizes {[flat.size for flat, _ in staged]}")


def _receive_pieces(transport, sender, tag, ctx, out, first):
    for index, (low, high) in enumerate(algo.spans(out)):
        payload = first if index == 0 else transport.recv_p2p(sender, tag, ctx)[2]
        out[low:high] = np.frombuffer(payload, dtype=out.dtype)


class World:
    """Everything one init_process_group call created: store, transport, groups."""

    def __init__(self, store, rank, world_size, master_addr, timeout, backend):
        self.rank = rank
        self.world_size = world_size
        self.timeout = timeout
        self.backend = backend
        self.store = store
        self.closed = False
        try:
            self.transport = Transport(store, rank, world_size, master_addr,
                                       join_prefix(store, rank, world_size), auth.job_secret())
        except BaseException:
            store.close()
            raise
        self.executor = Executor()
        record = flight_recorder.recorder()
        record.rank, record.world_size = rank, world_size
        # Every group's shared-memory files, unmapped at close even if a group object lives on.
        self.shared_segments = weakref.WeakSet()
        self.default_group = ProcessGroup(self, 0, range(world_size))
        self._next_group_id = 1
        try:
            # Every peer that finished this barrier has connected and been admitted.
            self.default_group.barrier()
        except BaseException:
            self.close()
            raise

    def new_group(self, ranks):
        """Every rank must call this in the same order; non-members get None."""
        group_id = self._next_group_id
        self._next_group_id += 1
        ranks = sorted(set(self.default_group.ranks if ranks is None else ranks))
        if any(not 0 <= rank < self.world_size for rank in ranks):
            raise ValueError(f"new_group ranks {ranks} must lie in [0, {self.world_size})")
        return ProcessGroup(self, group_id, ranks) if self.rank in ranks else None

    def close(self):
        """Leave the job without waiting for any peer. Rank 0's store server stays up
        (a multi_tenant TCPStore), so a rank that re-initializes before rank 0 left
        this world still meets rank 0's next init there."""
        self.closed = True
        self.executor.drain()
        for segments in list(self.shared_segments):
            segments.close()
        self.transport.close()
        if self.rank == 0:
            try:
                self.store.delete_key(_WORLD_SIZE_KEY)
            except DistStoreError:
                pass  # a store hosted elsewhere that is gone: nobody can read the key either
        self.store.close()


_WORLD_SIZE_KEY = "disttorch/world_size"


def join_prefix(store, rank, world_size):
    """Check WORLD_SIZE against rank 0's and return this init's key prefix in the store.

    Rank 0 publishes its world size (and withdraws it when it leaves, so a rank
    that re-initializes early waits for rank 0's next init). A rank that disagrees
    raises at once; when rank 0 counts on it, it first leaves the error where
    rank 0 and the others look for its address, so they fail at once too.
    """
    if rank == 0:
        store.set(_WORLD_SIZE_KEY, str(world_size))
        expected = world_size
    else:
        expected = int(store.get(_WORLD_SIZE_KEY))
    prefix = None
    if rank < expected:
        # Every init adds one per rank: all ranks of one init compute the same number.
        prefix = f"disttorch/{(store.add('disttorch/init_count', 1) - 1) // expected}"
    if expected != world_size:
        message = (f"WORLD_SIZE mismatch: rank {rank} was started with WORLD_SIZE={world_size} "
                   f"but rank 0 with WORLD_SIZE={expected}; start every rank with the same "
                   "WORLD_SIZE")
        if prefix is not None:
            store.set(f"{prefix}/peer/{rank}", msgpack.packb({"error": message}))
        raise DistError(message)
    return prefix


def _setting(name, text, low=0, high=None):
    """``text`` (from ``name``) as an int in [low, high], or a ValueError naming both."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}={text!r} is not valid: it must be an integer {bound}")
    return value


def _init_from_url(init_method, rank, world_size):
    url = urllib.parse.urlparse(init_method)
    if url.scheme == "env":
        for name, low, high in (("RANK", 0, None), ("WORLD_SIZE", 1, None),
                                ("MASTER_PORT", 1, 65535)):
            if name in os.environ:
                _setting(name, os.environ[name], low, high)
        found = cluster_env.detect()
        if found is not None:
            _export(found)
            return found.master_addr, found.master_port, found.rank if rank < 0 else rank, \
                found.world_size if world_size < 0 else world_size
        if rank < 0:
            rank = _setting("RANK", os.environ["RANK"])
        if world_size < 0:
            world_size = _setting("WORLD_SIZE", os.environ["WORLD_SIZE"], low=1)
        port = _setting("MASTER_PORT", os.environ["MASTER_PORT"], 1, 65535)
        return os.environ.get("MASTER_ADDR", "127.0.0.1"), port, rank, world_size
    if url.scheme == "tcp":
        query = urllib.parse.parse_qs(url.query)
        rank = _setting("rank", query.get("rank", [rank])[0], low=-1)
        world_size = _setting("world_size", query.get("world_size", [world_size])[0], low=-1)
        port = _setting(f"the port of init_method {init_method!r}",
                        url.netloc.rpartition(":")[2] if ":" in url.netloc else "", 1, 65535)
        return url.hostname, port, rank, world_size
    raise ValueError(f"unsupported init_method {init_method!r}; use 'env://' or 'tcp://host:port'")


def _export(found):
    """srun or mpirun started this rank: expose the torchrun-style variables scripts read after init
    (LOCAL_RANK for the device, WORLD_SIZE, ...), leaving any the user set alone."""
    for name, value in (("RANK", found.rank), ("WORLD_SIZE", found.world_size), ("LOCAL_RANK", found.local_rank),
                        ("LOCAL_WORLD_SIZE", found.local_world_size), ("GROUP_RANK", found.node_rank),
                        ("MASTER_ADDR", found.master_addr), ("MASTER_PORT", found.master_port)):
        os.environ.setdefault(name, str(value))


def _check_rank(rank, world_size):
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world_size {world_size}: need "
                         "0 <= rank < world_size")


def init_world(init_method=None, rank=-1, world_size=-1, timeout=None, store=None,
               backend="zmq"):
    """Rendezvous with the other ranks and connect to all of them; returns a World."""
    timeout = as_seconds(DEFAULT_TIMEOUT if timeout is None else timeout)
    if store is None:
        try:
            master_addr, master_port, rank, world_size = _init_from_url(
                init_method or "env://", rank, world_size)
        except KeyError as missing:
            raise ValueError(
                f"init_process_group with env:// needs the environment variable {missing}; "
                "start workers with disttorch-launch, srun or mpirun, or set RANK, WORLD_SIZE, "
                "MASTER_ADDR and MASTER_PORT") from None
        _check_rank(rank, world_size)
        store = TCPStore(master_addr, master_port, world_size, is_master=rank == 0,
                         timeout=timeout, multi_tenant=True)
    else:
        master_addr = getattr(store, "host", "127.0.0.1")
        _check_rank(rank, world_size)
    return World(store, rank, world_size, master_addr, timeout, backend)
