"""The verifier chain: each verifier judges the records still standing; a rejection stops a record there."""

from __future__ import annotations

from collections.abc import Sequence

from synth.errors import StoreError, VerifierError
from synth.records import Record, Verdict
from synth.verify.protocol import Verifier


async def run_chain(verifiers: Sequence[Verifier], records: list[Record]) -> None:
    """Runs verifiers in order on the records still standing; a rejected record stops there, and a sample a
    verifier rewrote is what the next verifier sees and what is stored."""
    standing = [r for r in records if r.status == "accepted"]
    for verifier in verifiers:
        if not standing:
            return
        verdicts = await _verify(verifier, standing)
        survivors = []
        for record, verdict in zip(standing, verdicts, strict=True):
            record.verdicts.append(verdict)
            if verdict.replacement is not None:  # a transforming verifier (a PII scrub): later ones see the result,
                record.sample = verdict.replacement  # and a rejected record is stored rewritten too
                record.raw_output = None  # the model's raw text holds what the verifier took out
            if verdict.passed:
                survivors.append(record)
            else:
                record.status, record.reason = "rejected", verdict.reason
        standing = survivors


async def _verify(verifier: Verifier, records: list[Record]) -> list[Verdict]:
    try:
        verdicts = await verifier.verify_batch(records)
    except (VerifierError, StoreError):  # the run's own claims store failing (disk full) stops the run
        raise
    except Exception as exc:
        raise VerifierError(f"verifier {verifier.name} crashed: {type(exc).__name__}: {exc}") from exc
    if len(verdicts) != len(records):
        raise VerifierError(f"verifier {verifier.name} returned {len(verdicts)} verdicts for {len(records)} records")
    return verdicts
