"""Dataset hygiene the core shares with the dedup verifiers: text normalisation, MinHash sketches and the
cross-run dedup index."""
