"""The `synth` command's process entry: start-up with the cyclic collector out of the way.

Importing synth and its libraries makes ~400k objects that live as long as the process. Collecting while they
are made only walks them again and again (~0.2 s a start), and every full collection of a long run would walk
them once more; `gc.freeze()` moves them out of the collector's sight. Only the command's own process does
this: a notebook or test importing `synth.cli` keeps Python's defaults.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from synth.cli import main as command
    finally:
        gc.freeze()
        gc.enable()
    command()
