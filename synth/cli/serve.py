"""`synth serve-model`: the local model behind an OpenAI-compatible API, for several workers to share."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from synth.errors import UserError

EXIT_USER_ERROR = 2


@click.command("serve-model")
@click.option("--model", default="smollm2", show_default=True, help="smollm2 (bundled) or a path to a .gguf file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; keep it local.")
@click.option("--port", default=8088, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
def serve_model(model: str, host: str, port: int) -> None:
    """Serve a local GGUF model at /v1/chat/completions until Ctrl-C.

    Point specs at it with `model: openai/<the name printed>` and `api_base: <the printed URL>`; another model name
    gets 404, as from OpenAI. Streams with stream=true.
    """
    from synth.llm.serve import serve

    def ready(url: str) -> None:
        name = Path(model).stem if model.endswith(".gguf") else model
        click.echo(f"serving {model} at {url} as model {name!r} (Ctrl-C to stop)")

    try:
        asyncio.run(serve(model, host, port, on_ready=ready))
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        click.echo("stopped")
