"""Functions the spawn tests start in child processes (module level, so spawned children can import them)."""
import os
import signal
import sys


def write_index(index, folder, suffix):
    with open(os.path.join(folder, f"{index}.{suffix}"), "w") as handle:
        handle.write(str(index))


def fail_on_one(index, folder):
    if index == 1:
        raise ValueError(f"child {index} refuses")
    write_index(index, folder, "ok")


def exit_with_code(index, code):
    if index == 0:
        sys.exit(code)


def kill_self(index):
    if index == 1:
        os.kill(os.getpid(), signal.SIGKILL)


def wait_forever(index, folder):
    import time
    if index == 0:
        raise RuntimeError("first child fails")
    write_index(index, folder, "started")
    while True:
        time.sleep(0.1)


def put_tensor(index, queue):
    import disttorch
    queue.put((index, disttorch.full((2,), float(index))))
