"""Hierarchical all_reduce for groups with several ranks on each of several hosts.

A flat ring crosses between hosts once per host boundary with 2(n-1)/n of the array on every
crossing, so what each host sends grows with its ranks. Here the array goes in three phases:

  reduce-scatter in the host (shared memory): local rank l holds its host's sum of shard l
  all-reduce between hosts: local rank l with local rank l of every other host, shard l only
  all-gather in the host (shared memory): every rank gets every shard

so a host sends 2(h-1)/h of the array whatever its number of ranks (h hosts), spread over its
ranks' connections. Hosts are told apart by host.py's identity (the same /dev/shm), which every
rank sees alike for every peer, so all ranks build the same topology. DISTTORCH_HIERARCHICAL=0
keeps the flat algorithms.
"""
import os

import numpy as np

from . import collectives as algo


def plan(world, group):
    """(host_ranks, cross_ranks) for this rank of ``group``, or None when the group is not
    several hosts with the same number (more than one) of its ranks each."""
    if os.environ.get("DISTTORCH_HIERARCHICAL", "1") == "0":
        return None
    transport = world.transport
    hosts = {}
    for rank in group.ranks:
        hosts.setdefault(transport.host_key(rank), []).append(rank)
    sizes = {len(members) for members in hosts.values()}
    if len(hosts) < 2 or len(sizes) != 1 or sizes == {1}:
        return None
    mine = hosts[transport.host_key(world.rank)]
    local_index = mine.index(world.rank)
    cross = sorted(members[local_index] for members in hosts.values())
    return mine, cross


class HostHierarchy:
    """The two subgroups of one process group: this rank's host, and its peers of the same
    local index on the other hosts. Their ids derive from the parent's, so no rank outside the
    parent needs to take part in creating them."""

    def __init__(self, parent, host_ranks, cross_ranks, make_group):
        self.host = make_group(f"{parent.group_id}.host", host_ranks)
        self.cross = make_group(f"{parent.group_id}.cross", cross_ranks)
        self.world_size = parent.size

    def usable_for(self, buf):
        """Whether every rank takes this path for ``buf`` (all decide from its size alone)."""
        return (self.host._shm is not None and buf.size >= self.host.size
                and self.host._shm.usable_for(buf.nbytes // self.host.size, buf.nbytes))

    def start_all_reduce(self, buf, op):
        """Reduce-scatter in the host, then send this rank's shard to the other hosts; returns
        ``finish()``, which completes the exchange between hosts and the all-gather in the host."""
        local_size = self.host.size
        shard_size = -(-buf.size // local_size)
        padded = buf if shard_size * local_size == buf.size else np.zeros(shard_size * local_size, buf.dtype)
        if padded is not buf:
            padded[:buf.size] = buf
        shard = np.empty(shard_size, buf.dtype)
        partial_op = "sum" if op == "avg" else op
        _reduce_scatter_in_host(self.host.open_channel("reduce_scatter", buf.dtype, (shard_size,), partial_op),
                                shard, padded, partial_op)
        cross_ch = self.cross.open_channel("all_reduce", buf.dtype, (shard_size,), partial_op)
        rest = algo.start_all_reduce(cross_ch, shard, partial_op)

        def finish():
            if rest is None:
                algo.all_reduce(cross_ch, shard, partial_op)
            else:
                rest(cross_ch)
            algo.finish_reduction(op, shard, self.world_size)
            gather_ch = self.host.open_channel("all_gather", buf.dtype, (shard_size,), None)
            algo.all_gather(gather_ch, padded, shard)
            if padded is not buf:
                buf[...] = padded[:buf.size]
        return finish


def _reduce_scatter_in_host(ch, shard, source, op):
    """reduce_scatter through shared memory at any size: unlike FSDP's inputs, what arrives here is
    bounded by DDP's bucket cap, and staging is what keeps the host's phase cheap."""
    if ch.shm is not None and ch.shm.usable_for(source.nbytes, source.nbytes):
        ch.shm.reduce_scatter(ch, shard, source, op,
                              lambda channel: algo.reduce_scatter(channel, shard, source, op))
    else:
        algo.reduce_scatter(ch, shard, source, op)
