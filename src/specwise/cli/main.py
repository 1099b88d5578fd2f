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
    ("decide", "specwise.cli.decide:decide"),
]

app = typer.Typer(
    name="specwise",
    help="Decide whether speculative decoding pays off on your LLM deployment: plan, estimate, "
    "simulate, bench, decide.",
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
    except Exception as exc:  # click usage errors
        try:
            import click
        except ImportError:  # recent typer vendors click as typer._click
            from typer import _click as click  # type: ignore[no-redef]

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
