"""`python -m synth.cli`: the same as the `synth` command."""

from synth.cli.entry import main

main()
