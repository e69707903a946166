"""synth: LLM synthetic data for fine-tuning, verified, deduplicated and traceable row by row."""

__version__ = "0.1.0"
