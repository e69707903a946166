"""Exit codes and the one place synth errors become a message: 0 done, 1 run failed, 2 bad input, 130 interrupted."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

from rich.console import Console

from synth.errors import ModelError, StoreError, SynthError, UserError

errors = Console(stderr=True, highlight=False, soft_wrap=True)  # a path cut in two cannot be copied

EXIT_RUN_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns synth errors into one clear message and the documented exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            fail(f"error: {exc}", EXIT_USER_ERROR)
        except ModelError as exc:
            fail(f"model error: {exc}", EXIT_RUN_FAILED)
        except StoreError as exc:
            fail(f"run failed: {exc}; fix that, then run the same command again to continue", EXIT_RUN_FAILED)
        except SynthError as exc:
            fail(f"run failed: {exc}", EXIT_RUN_FAILED)

    return wrapper


def fail(message: str, code: int) -> NoReturn:
    errors.print(message, markup=False)
    sys.exit(code)
