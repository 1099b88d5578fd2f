"""The ``specwise`` console script.

Each command lives in its own module under :mod:`specwise.cli` and keeps heavy imports inside the
command function, so ``specwise --help`` stays instant. Errors the user can fix
(:class:`~specwise.errors.UserError`, invalid settings) print one line and exit with code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from specwise import __version__

# (command name, "module:function", help). Add a command by adding a line here.
COMMANDS: list[tuple[str, str]] = [
    ("plan", "specwise.cli.plan:plan"),
    ("catalog", "specwise.cli.catalog:catalog"),
    ("simulate", "specwise.cli.simulate:simulate"),
    ("serve-sim", "specwise.cli.serve_sim:serve_sim"),
    ("estimate", "specwise.cli.estimate:estimate"),
    ("bench", "specwise.cli.bench:bench"),
]

app = typer.Typer(
    name="specwise",
    help="Decide whether speculative decoding pays off on your LLM deployment: plan, estimate, "
    "simulate, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"specwise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """specwise: plan, estimate, simulate and benchmark speculative decoding."""


def _register() -> None:
    for name, target in COMMANDS:
        module_name, func_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built yet
                continue
            raise
        app.command(name=name)(getattr(module, func_name))


_register()


def main(argv: list[str] | None = None) -> None:
    from pydantic import ValidationError

    from specwise.errors import UserError

    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        typer.secho(f"error: invalid {where or 'input'}: {first.get('msg')}", fg="red", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors (bad option names, values outside typer's min/max)
        if isinstance(exc, _click_exception_types()):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        raise


def _click_exception_types() -> tuple[type, ...]:
    """ClickException of the click that typer uses: recent typer vendors it as ``typer._click``, which is not
    the standalone ``click`` package even when both are installed."""
    types: list[type] = []
    for name in ("typer._click", "click"):
        try:
            types.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(types)

if __name__ == "__main__":
    main()
