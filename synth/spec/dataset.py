"""A spec's `dataset:` block (the dataset its accepted records count toward, with targets per category) and the
`topup:` mark that `synth topup` puts on the jobs it sizes, so their items get ids of their own."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from synth.llm.config import StrictModel

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Target = Annotated[int, Field(ge=0, le=10_000_000)]


class DatasetRef(StrictModel):
    """`dataset: {name: support, targets: {billing/refunds: 500}}`: top-ups keep each category at its target."""

    name: str = Field(pattern=DATASET_NAME_PATTERN, max_length=128)
    targets: dict[str, Target] = Field(
        default_factory=dict,
        description="Accepted records wanted per category path (e.g. science/physics); default: each leaf's quota.",
    )
    max_cost_usd: float | None = Field(None, gt=0, description="The most one top-up round may spend (estimated).")
    margin: float = Field(0.1, ge=0, le=1, description="Extra share of expected yield a top-up sizes for.")
    prior_acceptance: float = Field(
        0.5, gt=0, le=1, description="Acceptance rate assumed for a (category, template) with no records yet."
    )
    schedule: bool = Field(True, description="Scheduled ticks (`rq cron workers.cron`) top it up; false: on demand.")


class TopupRound(StrictModel):
    """Set by `synth topup` only: the round is part of spec_id, so a round's items never share an id with
    an earlier round's or with the dataset's ordinary runs."""

    dataset: str = Field(pattern=DATASET_NAME_PATTERN, max_length=128)
    round: int = Field(ge=1)
