"""Verification: the Verifier protocol, the plugin registry and the chain that runs verifiers."""
