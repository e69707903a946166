"""`synth judge calibrate`: how well does a spec's judge agree with people? (filled in below)"""

from __future__ import annotations

import click


@click.group()
def judge() -> None:
    """LLM-as-judge: calibrate a spec's judge panel against a human-labelled gold set."""
