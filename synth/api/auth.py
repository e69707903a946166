"""API keys: `synth_<id>_<secret>`. Redis keeps only the id, the tenant and the sha256 of the whole key (a
256-bit random secret needs no slow KDF); a presented key is hashed and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from synth.distributed import keys
from synth.errors import UserError

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KEY_PATTERN = re.compile(r"^synth_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    created_at: str


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise UserError(f"tenant {tenant!r}: use lowercase letters, digits, '-' and '_' (at most 63)")
    return tenant


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: redis.Redis, tenant: str) -> str:
    """A new key for the tenant; the only time it is ever shown."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = f"synth_{key_id}_{secret}"
    record = {"tenant": check_tenant(tenant), "sha256": digest(key), "created_at": datetime.now(UTC).isoformat()}
    conn.hset(keys.API_KEYS, key_id, json.dumps(record))
    return key


def revoke_key(conn: redis.Redis, key_id: str) -> bool:
    return bool(conn.hdel(keys.API_KEYS, key_id))


def list_keys(conn: redis.Redis) -> list[KeyInfo]:
    found = []
    for key_id, raw in conn.hgetall(keys.API_KEYS).items():
        record = json.loads(raw)
        found.append(KeyInfo(_text(key_id), record["tenant"], record["created_at"]))
    return sorted(found, key=lambda k: (k.tenant, k.created_at))


def tenant_for(conn: redis.Redis, presented: str) -> str | None:
    """The tenant a key belongs to, or None for a malformed, unknown or revoked key."""
    match = KEY_PATTERN.match(presented)
    if match is None:
        return None
    raw = conn.hget(keys.API_KEYS, match.group(1))
    if raw is None:
        return None
    record = json.loads(raw)
    if not hmac.compare_digest(digest(presented), record["sha256"]):
        return None
    tenant: str = record["tenant"]
    return tenant


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
