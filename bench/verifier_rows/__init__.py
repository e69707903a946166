"""One module per verifier: a function returning its accuracy row for bench/verifiers.py."""
