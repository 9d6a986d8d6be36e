"""How much a stranger's garbage grows a running job's processes, vs torch's TCPStore.

A 2-rank disttorch job does all_reduces while an attacker on loopback, who knows nothing but
the ports (read from /proc, as anyone on the host can), floods rank 1's data ports and the
store port on rank 0 with --mib MiB per attack: raw TCP garbage, ZeroMQ handshakes whose
HELLO claims 16 MiB, and ZeroMQ with a wrong secret; then holds 1,000 connections open
mid-greeting (slow loris). Growth is each target's peak resident
size (VmHWM) after the flood minus before. The reference: a torch.distributed.TCPStore
master sent the same number of bytes as values by a client that knows nothing either (torch's
store has no secret to know).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comm"))
import flood_client  # noqa: E402  (the tests' attacker, found next to them)

WORKER = """
import time
import disttorch as torch
import disttorch.distributed as dist
import disttorch.comm as comm
dist.init_process_group("zmq", timeout=60)
store = comm.world().store
rounds = 0
while True:
    if rounds == 20:
        store.set(f"bench/ready/{dist.get_rank()}", "1")
    stop = torch.tensor([float(dist.get_rank() == 0 and store.check(["bench/stop"]))])
    dist.all_reduce(stop, op=dist.ReduceOp.MAX)
    if stop.item():
        break
    tensor = torch.ones(100_000)
    dist.all_reduce(tensor)
    assert float(tensor[0]) == dist.get_world_size()
    rounds += 1
    time.sleep(0.02)
dist.destroy_process_group()
"""

TORCH_STORE = """
import sys
import torch.distributed as dist
store = dist.TCPStore("127.0.0.1", 0, is_master=True)
print(store.port, flush=True)
sys.stdin.read()
"""


def _growth_mib(pid, flood):
    """Growth of ``pid``'s peak RSS while ``flood()`` ran and the sockets it returns stay open."""
    before = flood_client.memory_kib(pid)["VmHWM"]
    held = flood() or []
    time.sleep(0.5)
    growth = (flood_client.memory_kib(pid)["VmHWM"] - before) / 1024
    for sock in held:
        sock.close()
    return growth


def _disttorch(flood_bytes, env):
    from comm_harness import free_port
    from disttorch.comm import TCPStore
    port = free_port()
    secret = os.urandom(16).hex()
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        script = Path(tmp, "worker.py")
        script.write_text(WORKER)
        procs = [subprocess.Popen([sys.executable, str(script)], env=dict(
            env, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
            DISTTORCH_SECRET=secret)) for rank in range(2)]
        harness = TCPStore("127.0.0.1", port, timeout=60, secret=secret.encode())
        try:
            harness.wait(["bench/ready/0", "bench/ready/1"])
            rank_ports = [p for p in flood_client.listening_tcp_ports(procs[1].pid) if p != port]
            attacks = {
                "raw_tcp": lambda target: flood_client.raw_tcp(target, 4, flood_bytes // 4),
                "handshake_claim": lambda target: flood_client.handshake_claim(
                    target, 16, flood_bytes // 16),
                "wrong_secret": lambda target: flood_client.zmq_wrong_secret(
                    target, 16, flood_bytes // 16),
                "half_open_x1000": lambda target: flood_client.half_open(target, 1000),
            }
            growth = {}
            for name, attack in attacks.items():
                rank = _growth_mib(procs[1].pid, lambda: [
                    sock for p in rank_ports for sock in attack(p) or []])
                store = _growth_mib(procs[0].pid, lambda: attack(port))
                growth[name] = (rank, store)
                print(f"disttorch {name:16}: rank +{rank:7.1f} MiB  store +{store:7.1f} MiB",
                      flush=True)
            harness.set("bench/stop", "1")
            codes = [proc.wait(timeout=60) for proc in procs]
        finally:
            harness.close()
            for proc in procs:
                proc.kill()
    if codes != [0, 0]:
        raise RuntimeError(f"the flooded job failed: exit codes {codes}")
    return growth


def _torch_store(flood_bytes, env):
    import torch.distributed as dist
    server = subprocess.Popen([sys.executable, "-c", TORCH_STORE], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        stranger = dist.TCPStore("127.0.0.1", port, is_master=False)
        value = b"\xa5" * (4 << 20)  # its server refuses values over 8 MiB

        def flood():
            for index in range(flood_bytes // len(value)):
                stranger.set(f"garbage/{index}", value)
        growth = _growth_mib(server.pid, flood)
        print(f"torch TCPStore   set by a stranger: store +{growth:7.1f} MiB", flush=True)
        return growth
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB each attack sends each target")
    args = parser.parse_args()
    flood_bytes = args.mib << 20
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                     os.environ.get("PYTHONPATH")])))
    env.pop("DISTTORCH_SECRET", None)
    growth = _disttorch(flood_bytes, env)
    try:
        reference = f" torch_tcpstore_growth_MiB={_torch_store(flood_bytes, env):.0f}"
    except ImportError:
        reference = ""
    loris = growth.pop("half_open_x1000")
    print(f"flood: rank_rss_growth_MiB={max(r for r, _ in growth.values()):.1f} "
          f"store_rss_growth_MiB={max(s for _, s in growth.values()):.1f} "
          f"flood_MiB={args.mib} per attack x{len(growth)} "
          f"half_open_KiB_per_connection={max(loris) * 1024 / 1000:.1f}{reference}")


if __name__ == "__main__":
    main()
