"""`python -m disttorch.distributed.run`: the same command as `disttorch-launch` (torchrun's spelling)."""

from disttorch.launcher.cli import main

if __name__ == "__main__":
    main(prog_name="python -m disttorch.distributed.run")
