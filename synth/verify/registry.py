"""The verifier registry: plugins found by the `synth.verifiers` entry point group, built from their options."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from synth.errors import UserError
from synth.verify.protocol import Verifier, VerifierContext, VerifierOptions, VerifierPlugin

ENTRY_POINT_GROUP = "synth.verifiers"


@cache
def _registry() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    return sorted(_registry())


def plugin(name: str) -> VerifierPlugin:
    """The verifier class registered under `name`; UserError naming the known ones if there is none."""
    entry = _registry().get(name)
    if entry is None:
        raise UserError(f"unknown verifier {name!r}; installed: {', '.join(available()) or 'none'}")
    loaded: VerifierPlugin = entry.load()
    return loaded


def parse_options(name: str, options: dict[str, Any], base_dir: Path | None = None) -> VerifierOptions:
    """Validates a verifier's options; raises ValidationError so the caller can name each field's path.
    `base_dir` (the spec's folder) is in the validation context: file options resolve against it."""
    return plugin(name).Options.model_validate(options, context={"base_dir": base_dir})


def build(name: str, options: dict[str, Any], context: VerifierContext) -> Verifier:
    cls = plugin(name)
    return cls(cls.Options.model_validate(options), context)
