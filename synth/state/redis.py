"""A distributed run's shared state in Redis: the response cache and the dedup claims, as LocalState keeps
them in SQLite for a local run. Every worker of a job sees the same cache and the same claims.

Cache reads and writes made in the same turn of the event loop travel together (one MGET, one script for the
SETs or the claims): a batch asks for all its items' answers at once, and a command apiece cost more CPU than
the item. A script, not a pipeline: redis-py packs and parses a pipeline command by command (128 claims: 2.0 ms
of client CPU as a pipeline, 0.33 ms as one script; measured here).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from synth.distributed import keys
from synth.state.buckets import BucketEntry, Earlier
from synth.state.coalescer import Coalescer

STATE_TTL_S = 30 * 24 * 3600  # cache and claims outlive any rerun or top-up of a job, then free the memory
# Writes are not awaited by the call that answered (see `put`): they can wait for company this long.
WRITE_LINGER_S = 0.2

SET_SCRIPT = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
"""

# SET NX GET: takes the key (nil back, false in Lua, which keeps the reply a whole array) or says who holds it.
CLAIM_SCRIPT = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'GET', 'EX', ARGV[1]) end
return out
"""

# One script per batch of entries: Redis runs it atomically, so the sequence order is the order entries were
# entered in, across every worker. Buckets hold their members' sequences packed as 4-byte big-endian integers,
# in rising order (appended), so "entered before me" is a prefix of each bucket. An entry's bucket keys come as
# one string of 8-byte keys, read with one HMGET and (if new) appended to with one HSET: a command per bucket
# cost more than the rest of the script.
ENTER_SCRIPT = """
local seqs, payloads, counter, members = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  local owner, payload, packed_keys = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local seq, fresh = redis.call('HGET', seqs, owner), false
  if seq then
    seq = tonumber(seq)
  else
    seq, fresh = redis.call('INCR', counter), true
    redis.call('HSET', seqs, owner, seq)
    redis.call('HSET', payloads, seq, owner .. '\0' .. payload)
  end
  local fields = {}
  for at = 1, #packed_keys, 8 do fields[#fields + 1] = string.sub(packed_keys, at, at + 7) end
  local seen, order, grown = {}, {}, {}
  local buckets = #fields > 0 and redis.call('HMGET', members, unpack(fields)) or {}
  for b = 1, #fields do
    local packed = buckets[b] or ''
    local pos, stop = 1, math.min(#packed, 4 * limit)
    while pos <= stop do
      local s = struct.unpack('>I4', packed, pos)
      if s >= seq then break end
      if not seen[s] then seen[s] = true; order[#order + 1] = s end
      pos = pos + 4
    end
    if fresh then grown[#grown + 1] = fields[b]; grown[#grown + 1] = packed .. struct.pack('>I4', seq) end
  end
  if #grown > 0 then redis.call('HSET', members, unpack(grown)) end
  table.sort(order)
  if #order > 0 then out[#out + 1] = redis.call('HMGET', payloads, unpack(order)) else out[#out + 1] = {} end
end
for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
return out
"""


class RedisState:
    """ResponseCache and ClaimIndex for one distributed job, over an asyncio Redis client."""

    def __init__(self, client: aioredis.Redis, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self._reads: Coalescer[str, bytes | str | None] = Coalescer(self._get_many)
        # Answers come back one by one; a write waits for others (a call takes about as long as this).
        self._writes: Coalescer[tuple[str, str], None] = Coalescer(self._set_many, linger_s=WRITE_LINGER_S)
        self._unflushed: list[asyncio.Future[None]] = []
        self._claims: Coalescer[tuple[str, str], bytes | None] = Coalescer(self._claim_many)
        self._set_script = client.register_script(SET_SCRIPT)
        self._claim_script = client.register_script(CLAIM_SCRIPT)
        self._enter_script = client.register_script(ENTER_SCRIPT)

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self._reads.submit(keys.cache_entry(self.job_id, key))
        return json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        """Queued, not awaited: answers trickle in one by one, and a SET apiece cost more CPU than the rest of
        the call's handling. They go to Redis together every WRITE_LINGER_S, and at `flush`, which a batch awaits
        before it hands its records on (an answer a killed worker had not written is asked again on the retry)."""
        self._unflushed.append(self._writes.defer((keys.cache_entry(self.job_id, key), json.dumps(value))))

    async def flush(self) -> None:
        """Every put so far stored in Redis; raises what a write raised."""
        self._writes.send_now()
        unflushed, self._unflushed = self._unflushed, []
        outcomes = await asyncio.gather(*unflushed, return_exceptions=True)  # every error retrieved, the first raised
        if errors := [outcome for outcome in outcomes if isinstance(outcome, BaseException)]:
            raise errors[0]

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        held = await self._claims.submit((keys.claim(self.job_id, namespace, key), owner))
        return owner if held is None else held.decode() if isinstance(held, bytes) else str(held)

    async def _get_many(self, names: list[str]) -> list[bytes | str | None]:
        found: list[bytes | str | None] = await self.client.mget(names)
        return found

    async def _set_many(self, entries: list[tuple[str, str]]) -> list[None]:
        names, values = zip(*entries, strict=True)
        await self._set_script(keys=names, args=[STATE_TTL_S, *values])
        return [None] * len(entries)

    async def _claim_many(self, claims: list[tuple[str, str]]) -> list[bytes | None]:
        """SET NX GET (Redis >= 7) per claim, in the order they were made: each takes the key or says who holds it."""
        names, owners = zip(*claims, strict=True)
        held: list[bytes | None] = await self._claim_script(keys=names, args=[STATE_TTL_S, *owners])
        return held

    async def enter(self, namespace: str, entries: Sequence[BucketEntry], limit: int) -> list[Earlier]:
        args: list[bytes | str | int] = [limit, STATE_TTL_S]
        for entry in entries:
            args += [entry.owner, entry.payload, np.asarray(entry.buckets, dtype=">u8").tobytes()]
        replies = await self._enter_script(keys=keys.buckets(self.job_id, namespace), args=args)
        return [[_owner_and_payload(raw) for raw in reply] for reply in replies]

    async def aclose(self) -> None:
        await self.client.aclose()


def _owner_and_payload(raw: bytes) -> tuple[str, bytes]:
    owner, _, payload = raw.partition(b"\0")
    return owner.decode(), payload
