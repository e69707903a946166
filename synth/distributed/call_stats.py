"""Model-call counters the workers add up in Redis after each batch (429s, retries, 5xx): what /metrics shows,
since a batch's marker counts its calls and tokens but not how hard they were to get."""

from __future__ import annotations

import redis.asyncio as aioredis

from synth.distributed import keys
from synth.llm.client import CallStats


async def add_call_stats(client: aioredis.Redis, stats: CallStats) -> None:
    counts = {"rate_limited": stats.rate_limited, "retries": stats.retries, "server_errors": stats.server_errors}
    async with client.pipeline(transaction=False) as pipe:
        for name, count in counts.items():
            if count:
                pipe.hincrby(keys.CALL_STATS, name, count)
        await pipe.execute()
