"""`synth api serve` (the REST API under uvicorn) and `synth api key create|list|revoke`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth.cli.distributed import redis_option
from synth.cli.exits import handles_errors
from synth.distributed.connect import connect_checked, redis_url

console = Console(highlight=False)


@click.group()
def api() -> None:
    """The REST API: serve it, and manage the API keys that name its tenants."""


@api.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=int)
@redis_option
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where every tenant's runs, inputs and datasets go (default: SYNTH_API_DATA_ROOT, else runs/service).",
)
@click.option("--workers", default=1, show_default=True, type=int, help="Server processes (each its own snapshot).")
@handles_errors
def serve(host: str, port: int, redis_url_: str | None, data_root: Path | None, workers: int) -> None:
    """Serve the API (and /status, /metrics). Other limits: SYNTH_API_* variables, see docs/service.md."""
    import os

    import uvicorn

    url = redis_url(redis_url_)
    connect_checked(url).close()  # no Redis: say so now, not on the first request
    os.environ["SYNTH_REDIS_URL"] = url  # every server process builds its app from the environment
    if data_root is not None:
        os.environ["SYNTH_API_DATA_ROOT"] = str(data_root)
    uvicorn.run(
        "synth.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
        server_header=False,
    )


@api.group()
def key() -> None:
    """API keys: only their sha256 is stored; a key is shown once, when created."""


@key.command()
@click.argument("tenant")
@redis_option
@handles_errors
def create(tenant: str, redis_url_: str | None) -> None:
    """Create a key for TENANT and print it (the only time it is shown)."""
    from synth.api.auth import create_key

    click.echo(create_key(connect_checked(redis_url_), tenant))


@key.command(name="list")
@redis_option
@handles_errors
def list_command(redis_url_: str | None) -> None:
    """Key ids and their tenants (never the keys)."""
    from synth.api.auth import list_keys

    table = Table("key id", "tenant", "created")
    for info in list_keys(connect_checked(redis_url_)):
        table.add_row(info.key_id, info.tenant, info.created_at)
    console.print(table)


@key.command()
@click.argument("key_id")
@redis_option
@handles_errors
def revoke(key_id: str, redis_url_: str | None) -> None:
    """Revoke a key by its id (the 12 hex digits after `synth_`)."""
    from synth.api.auth import revoke_key
    from synth.errors import UserError

    if not revoke_key(connect_checked(redis_url_), key_id):
        raise UserError(f"no key with id {key_id}; see `synth api key list`")
    console.print(f"revoked {key_id}")
