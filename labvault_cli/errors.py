"""How the command ends on a mistake: one `error:` line on stderr and exit code 1, never a
traceback, whether the mistake is in the usage (click's), in the request (labvault's) or in the
database's answer."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

try:  # typer 0.2x parses with its own copy of click, whose exceptions it does not re-export
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from labvault.errors import LabvaultError


class OneLineUsageErrors(TyperGroup):
    """Usage mistakes (a missing option, an unknown command, a value of the wrong type) end as
    one `error:` line and exit code 1 like every other mistake, not click's usage box and 2.
    Help asked for by giving no arguments stays help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:  # the help is printed already
            sys.exit(exc.exit_code)
        except click_exceptions.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            message = exc.format_message().strip().rstrip(".")
            raise SystemExit(fail(message[:1].lower() + message[1:] + where).exit_code) from None
        except click_exceptions.ClickException as exc:
            raise SystemExit(fail(exc.format_message()).exit_code) from None
        except typer.Abort:
            raise SystemExit(fail("aborted; nothing more was done").exit_code) from None
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str) -> typer.Exit:
    """Print `error: message` as one unwrapped line on stderr; raise the returned exit."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code=1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn labvault and database errors into one line on stderr and exit code 1."""
    try:
        yield
    except LabvaultError as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc)
        raise fail(f"database: {reason}; check LABVAULT_DATABASE_URL and run `labvault db upgrade`") from None
