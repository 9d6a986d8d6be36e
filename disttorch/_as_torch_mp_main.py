"""What a multiprocessing "spawn" child of `python -m disttorch.as_torch` runs as its __mp_main__.

The parent's __main__ names this module in its __spec__, so multiprocessing re-runs it (not the bare
script) in the child: the alias goes in first, then the user's script runs in this namespace.
"""
from disttorch.as_torch import become_spawned_main

become_spawned_main(globals())
