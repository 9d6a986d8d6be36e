from disttorch.launcher.cli import main

main(prog_name="disttorch-launch")
