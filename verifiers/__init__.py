"""Verifier plugins shipped with synth, registered under the `synth.verifiers` entry-point group."""
