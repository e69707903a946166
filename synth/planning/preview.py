"""A preview job: the first few items of a spec, spread over its topics, with the ids a full run gives them."""

from __future__ import annotations

from dataclasses import replace

from synth.planning.job import PreparedJob


def preview_job(prepared: PreparedJob, count: int) -> PreparedJob:
    """The job cut down to `count` items: one per topic in turn, each topic's first ones (so its items, prompts
    and ids are exactly those the full run starts with)."""
    quotas = [0] * len(prepared.leaves)
    remaining = count
    while remaining and any(quota < leaf.quota for quota, leaf in zip(quotas, prepared.leaves, strict=True)):
        for index, leaf in enumerate(prepared.leaves):
            if remaining and quotas[index] < leaf.quota:
                quotas[index] += 1
                remaining -= 1
    leaves = [
        replace(leaf, quota=quota, max_units=quota if leaf.inputs is not None else leaf.max_units)
        for leaf, quota in zip(prepared.leaves, quotas, strict=True)
        if quota
    ]
    return replace(prepared, leaves=leaves)
