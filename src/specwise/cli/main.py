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
    ("monitor", "specwise.cli.monitor:monitor"),
    ("report", "specwise.cli.report:report"),
    ("demo", "specwise.cli.demo:demo"),
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
        target_obj = getattr(module, func_name)
        if isinstance(target_obj, typer.Typer):  # a command with subcommands (monitor: watch / rules / dashboard)
            app.add_typer(target_obj, name=name)
        else:
            app.command(name=name)(target_obj)


_register()


def main(argv: list[str] | None = None) -> None:
    from pydantic import ValidationError

    from specwise.errors import UserError

    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:  # a command's typer.Exit(code) comes back as the return value here
            sys.exit(rc)
    except UserError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        typer.secho(f"error: invalid {where or 'input'}: {first.get('msg')}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        code = _click_exit_code(exc)
        if code is None:
            raise
        sys.exit(code)


def _click_modules() -> list:
    """Every click implementation that may raise here: typer >= 0.26 vendors click as ``typer._click`` and
    raises its classes, while the real ``click`` package may be installed too (huggingface_hub brings it);
    which one a command raises depends on the installed typer, so both are checked."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def _click_exit_code(exc: BaseException) -> int | None:
    """Exit code for a click/typer control-flow exception (usage error: message + 2), None for anything else."""
    for mod in _click_modules():
        if isinstance(exc, mod.ClickException):
            exc.show()
            return 2 if isinstance(exc, mod.UsageError) else exc.exit_code
        # typer._click.exceptions has no Exit/Abort (typer defines its own), click.exceptions has both
        if isinstance(exc, getattr(mod, "Exit", ())):
            return exc.exit_code  # type: ignore[attr-defined]
        if isinstance(exc, getattr(mod, "Abort", ())):
            typer.secho("aborted", err=True)
            return 130
    if isinstance(exc, (typer.Exit,)):
        return getattr(exc, "exit_code", 0)
    return None

if __name__ == "__main__":
    main()
