"""Ranks on different namespace hosts talk over the veth; ranks on one host keep ipc:// and /dev/shm.

Each namespace host has its own hostname and network namespace but shares the machine's filesystem and
/dev/shm with the other, so only a host identity that looks past the filesystem keeps the data on the link.
"""

import json
from pathlib import Path

import pytest
from launch_helpers import launcher_env, start_launcher, write_script
from test_launcher_multi_node import _assert_nothing_left, _finish, _node_flags

DDP_WORKER = Path(__file__).resolve().parents[1] / "parallel" / "ddp_worker.py"
PAYLOAD_FLOATS = 1 << 20

ROUTES_WORKER = f"""
    import json, os, socket
    import numpy as np
    import disttorch as torch
    import disttorch.distributed as dist
    from disttorch import comm
    dist.init_process_group()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    transport = comm.world().transport
    # Every rank's full payload must cross the link to the other host: no host can finish without it.
    payload = torch.full(({PAYLOAD_FLOATS},), float(rank + 1))
    dist.all_reduce(payload)
    # Odd sizes (shards padded) and other reduce ops, against numpy on every rank's values.
    values = [np.random.default_rng(seed).standard_normal(100_003) for seed in range(world_size)]
    ops_ok = {{}}
    for op, expected in (("AVG", np.mean(values, axis=0)), ("MAX", np.max(values, axis=0)),
                         ("SUM", np.sum(values, axis=0))):
        mine = torch.from_numpy(values[rank].copy())
        dist.all_reduce(mine, op=getattr(dist.ReduceOp, op))
        ops_ok[op] = bool(np.allclose(mine.numpy(), expected, rtol=1e-12, atol=1e-12))
    host_groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    mine = host_groups[rank // 2]
    local = torch.full(({PAYLOAD_FLOATS} // 4,), float(rank))
    dist.all_reduce(local, group=mine)
    report = {{
        "hostname": socket.gethostname(),
        "all_reduce_ok": bool((payload.numpy() == world_size * (world_size + 1) / 2).all()),
        "host_group_ok": bool((local.numpy() == sum(range(rank // 2 * 2, rank // 2 * 2 + 2))).all()),
        "local_peers": sorted(transport.local_peers),
        "shm_peers": sorted(transport.shm_peers),
        "endpoints": {{peer: route.split(":")[0]
                      for peer, route in transport.routes.items()}},
        "host_group_uses_shm": mine._shm is not None,
        "world_uses_shm": comm.world().default_group._shm is not None,
        "world_is_hierarchical": bool(comm.world().default_group._hierarchy),
        "ops_ok": ops_ok,
    }}
    dist.destroy_process_group()
    with open(f"routes_{{rank}}.json", "w") as out:
        json.dump(report, out)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("own_hostnames, hierarchical", [(True, True), (False, False)],
                         ids=["own-hostnames-hierarchical", "one-hostname-flat"])
def test_cross_host_data_crosses_the_veth_and_same_host_ranks_stay_local(tmp_path, two_hosts, own_hostnames,
                                                                          hierarchical):
    """With one hostname for both hosts, only the network namespace tells them apart. The all-reduce
    runs in the host hierarchy (shared memory in the host, shards between hosts) or as one flat group."""
    write_script(tmp_path, "routes.py", ROUTES_WORKER)
    before = [two_hosts.link_bytes(index) for index in (0, 1)]
    env = launcher_env(DISTTORCH_HIERARCHICAL="1" if hierarchical else "0")
    launchers = [start_launcher(*_node_flags(2, node, two_hosts.address(0), 29400, 2), "routes.py", cwd=tmp_path,
                                env=env, prefix=two_hosts.exec_prefix(node, own_hostnames)) for node in (0, 1)]
    for returncode, stderr in _finish(launchers, timeout=90):
        assert returncode == 0, stderr
    after = [two_hosts.link_bytes(index) for index in (0, 1)]
    reports = [json.loads((tmp_path / f"routes_{rank}.json").read_text()) for rank in range(4)]

    for rank, report in enumerate(reports):
        host, partner = rank // 2, rank ^ 1
        assert (report["hostname"] == two_hosts.hostname(host)) is own_hostnames
        assert report["all_reduce_ok"] and report["host_group_ok"], report
        assert report["local_peers"] == [partner] and report["shm_peers"] == [partner], report
        routes = {int(peer): scheme for peer, scheme in report["endpoints"].items()}
        assert routes == {peer: "ipc" if peer == partner else "tcp" for peer in range(4) if peer != rank}
        assert report["host_group_uses_shm"] and not report["world_uses_shm"], report
        assert report["world_is_hierarchical"] is hierarchical
        assert report["ops_ok"] == {"AVG": True, "MAX": True, "SUM": True}, report
    payload_bytes = PAYLOAD_FLOATS * 4
    for index in (0, 1):
        sent = after[index]["tx"] - before[index]["tx"]
        received = after[index]["rx"] - before[index]["rx"]
        assert sent >= payload_bytes and received >= payload_bytes, (index, before[index], after[index])
    _assert_nothing_left(two_hosts)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("overlap", ["0", "1"])
def test_ddp_across_hosts_matches_one_process_on_the_full_batch(tmp_path, two_hosts, overlap):
    scenarios = "mlp,cnn_syncbn,small_buckets,wide_mlp"
    env = launcher_env(DISTTORCH_DDP_OVERLAP=overlap)
    launchers = [start_launcher(*_node_flags(2, node, two_hosts.address(0), 29400, 2), str(DDP_WORKER),
                                scenarios, cwd=tmp_path, env=env, prefix=two_hosts.exec_prefix(node))
                 for node in (0, 1)]
    results = _finish(launchers, timeout=120, with_stdout=True)
    passed = {}
    for returncode, stdout, stderr in results:
        assert returncode == 0, stdout + stderr
        for line in stdout.splitlines():
            label, _, text = line.partition(" ")
            if text.startswith("{"):
                passed.setdefault(json.loads(text)["scenario"], set()).add(label)
    assert passed == {scenario: {f"[{rank // 2}:{rank}]" for rank in range(4)}
                      for scenario in scenarios.split(",")}
    _assert_nothing_left(two_hosts)
