"""Train a small CNN on the handwritten digits bundled with disttorch, data-parallel over processes.

    disttorch-launch --nproc 2 examples/train_digits.py --epochs 12
    srun -n 2 python examples/train_digits.py  # or mpirun -n 2, or sbatch examples/slurm/train_digits.sbatch
    python examples/train_digits.py            # one process works too

Each rank trains on its DistributedSampler shard; DDP averages gradients, so every rank holds the
same model. Rank 0 writes an atomic checkpoint each epoch; a restarted or re-run job resumes from it on
every rank (disttorch.utils.resume: rank 0 sends its checkpoint to the other nodes, or with
--shared-checkpoint-dir every node reads the directory they share and the ranks check they agree).
Running a finished job again evaluates its last checkpoint and exits 0.
"""
import argparse
import os
import sys
import time

import disttorch as torch
import disttorch.distributed as dist
import disttorch.nn.functional as F
from disttorch.comm import cluster_env
from disttorch.nn.parallel import DistributedDataParallel as DDP
from disttorch.utils.data import DataLoader
from disttorch.utils.data.distributed import DistributedSampler
from disttorch.utils.resume import CheckpointDir, ResumePoint
from disttorch.vision.datasets import Digits
from disttorch.vision.models import DigitsCNN


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32, help="per-rank batch size")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--shared-checkpoint-dir", action="store_true",
                   help="every node sees the same --checkpoint-dir (default: only node 0 needs it)")
    p.add_argument("--fail-at-epoch", type=int, default=-1,
                   help="(testing restarts) rank 1 exits with an error at this epoch on the first attempt")
    return p.parse_args(argv)


def progress(rank, epoch, epochs, done, total, started):
    """A one-line progress bar on rank 0 (redrawn in place on a terminal, every quarter otherwise)."""
    if rank != 0:
        return
    width = 24
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    line = f"epoch {epoch + 1}/{epochs} [{bar}] {done}/{total} batches {time.time() - started:5.1f}s"
    if sys.stdout.isatty():
        print("\r" + line, end="" if done < total else "\n", flush=True)
    elif done == total or done % max(total // 4, 1) == 0:
        print(line, flush=True)


def evaluate(model, dataset):
    model.eval()
    with torch.no_grad():
        images, labels = zip(*(dataset[i] for i in range(len(dataset))))
        logits = model(torch.stack(images))
        target = torch.tensor(labels)
        loss = F.cross_entropy(logits, target).item()
        accuracy = (logits.argmax(1) == target).float().mean().item()
    model.train()
    return loss, accuracy


def main(argv=None):
    args = parse_args(argv)
    # Started by disttorch-launch/torchrun, srun or mpirun: init_process_group() reads their variables.
    distributed = cluster_env.detect() is not None
    if distributed:
        dist.init_process_group(backend="zmq")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    restart = int(os.environ.get("DISTTORCH_RESTART_COUNT", "0"))
    torch.manual_seed(args.seed)

    train_set, test_set = Digits(train=True), Digits(train=False)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)

    model = DigitsCNN()
    ddp_model = DDP(model) if distributed else model
    optimizer = torch.optim.Adam(ddp_model.parameters(), lr=args.lr)

    checkpoints = CheckpointDir(args.checkpoint_dir, prefix="digits", shared=args.shared_checkpoint_dir)
    start = ResumePoint(None) if args.no_resume else checkpoints.resume(model, optimizer)
    if rank == 0:
        if start.epoch >= args.epochs:
            print(f"{start.path} already finished all {args.epochs} epochs; evaluating it "
                  f"(raise --epochs to train further, or --no-resume to start over)", flush=True)
        else:
            if start.resumed:
                print(f"resumed from {start.path} at epoch {start.epoch + 1}/{args.epochs} (restart {restart})",
                      flush=True)
            print(f"training on {len(train_set)} digits with {world} process(es), testing on {len(test_set)}",
                  flush=True)

    accuracy = None
    for epoch in range(start.epoch, args.epochs):
        if epoch == args.fail_at_epoch and restart == 0 and rank == min(1, world - 1):
            raise RuntimeError(f"injected failure at epoch {epoch + 1} (from --fail-at-epoch)")
        sampler.set_epoch(epoch)
        started, total_loss, batches = time.time(), 0.0, 0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(ddp_model(images), labels)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            batches += 1
            progress(rank, epoch, args.epochs, batches, len(loader), started)
        test_loss, accuracy = evaluate(model, test_set)
        if rank == 0:
            print(f"epoch {epoch + 1}: train_loss={total_loss / max(batches, 1):.4f} "
                  f"test_loss={test_loss:.4f} test_accuracy={accuracy * 100:.2f}%", flush=True)
        checkpoints.save(model, optimizer, epoch=epoch)
    if accuracy is None:
        _, accuracy = evaluate(model, test_set)
    if rank == 0:
        print(f"final test accuracy: {accuracy * 100:.2f}%", flush=True)
    if distributed:
        dist.destroy_process_group()
    return accuracy


if __name__ == "__main__":
    main()
