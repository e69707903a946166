"""Text helpers the built-in verifiers share (they live in the core, which the cross-run index also uses)."""

from __future__ import annotations

from synth.dedup.text import normalize, sample_text

__all__ = ["normalize", "sample_text"]
