"""Connections to the Redis that carries a distributed job: the URL (never printed with its password), blocking
clients for RQ and the CLI, and asyncio clients for work inside a batch.

Connections retry with backoff on connection errors (redis-py's own `Retry`), so a Redis restart under AOF
pauses workers for its duration instead of failing their batches.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

from synth.errors import UserError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RECONNECT_ATTEMPTS = 40  # with the backoff below: about a minute of retrying before an operation gives up
ASYNC_POOL_SIZE = 8  # per work horse: a Redis command takes ~0.1 ms, and every new connection costs CPU on both ends
RETRY_ON = [ConnectionError, TimeoutError, BusyLoadingError]
# What CLIENT SETINFO reports. redis-py otherwise reads its own package metadata with importlib.metadata for every
# new connection (5 ms of CPU each: most of a work horse's CPU before this was given).
DRIVER = DriverInfo(name="redis-py", lib_version=redis.__version__)


def redis_url(url: str | None = None) -> str:
    return url or os.environ.get("SYNTH_REDIS_URL") or DEFAULT_REDIS_URL


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), RECONNECT_ATTEMPTS)


def connect(url: str | None = None) -> redis.Redis:
    """A blocking client (for RQ and the CLI) that rides out a Redis restart."""
    return redis.Redis.from_url(
        redis_url(url), retry=_retry(), retry_on_error=RETRY_ON, health_check_interval=15, driver_info=DRIVER
    )


def connect_checked(url: str | None = None) -> redis.Redis:
    """`connect`, after one quick ping: a command pointed at no Redis says so at once instead of retrying."""
    resolved = redis_url(url)
    probe = redis.Redis.from_url(resolved, socket_connect_timeout=3, socket_timeout=3)
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise UserError(
            f"cannot reach Redis at {safe_url(resolved)} ({exc}); start redis-server "
            "(with --appendonly yes --maxmemory-policy noeviction) or point --redis / SYNTH_REDIS_URL at it"
        ) from None
    finally:
        probe.close()
    return connect(resolved)


def connect_async(url: str | None = None) -> aioredis.Redis:
    """An asyncio client for work inside a batch; create it in the loop that uses it.

    A blocking pool: hundreds of calls in flight each touch Redis (cache, limits, claims), and with a plain
    pool the one past its size fails with "Too many connections" instead of waiting a moment for its turn.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url(url),
        max_connections=ASYNC_POOL_SIZE,
        timeout=None,
        retry=_async_retry(),
        retry_on_error=RETRY_ON,
        health_check_interval=15,
        driver_info=DRIVER,
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it


def _async_retry() -> AsyncRetry:
    return AsyncRetry(ExponentialBackoff(cap=2.0, base=0.05), RECONNECT_ATTEMPTS)


def safe_url(url: str) -> str:
    """The URL without its password: what may be printed or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
