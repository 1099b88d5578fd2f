"""Flag parsing shared by every command: comma lists, TEMP:WEIGHT mixes, and ``--config FILE``.

One parser per idea, so ``--qps``, ``--temperatures``, ``--k-sweep`` and ``--concurrency`` read the same
way everywhere and fail with the same one-line message. ``--config FILE`` loads a YAML or JSON file of the
command's config model; flags given on the command line override its values; ``write_config`` stores the
resolved config next to the results so a run can be repeated exactly (``--config`` that file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from specwise.errors import UserError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MIX_WORDS = ("mix", "mixed", "workload")


def parse_list(text: str, what: str, cast: Callable[[str], T] = float,  # type: ignore[assignment]
               *, words: Iterable[str] = ()) -> list[T | None]:
    """``"1, 2,4"`` -> [1.0, 2.0, 4.0]; an item among ``words`` (e.g. 'mix') reads as None."""
    words = tuple(words)
    out: list[T | None] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part in words:
            out.append(None)
            continue
        try:
            out.append(cast(part))
        except ValueError:
            kind = "whole number" if cast is int else "number"
            raise UserError(f"{what}: {part!r} is not a {kind} (expected a comma-separated list, e.g. 1,2,4)") \
                from None
    if not out:
        raise UserError(f"{what}: give at least one value")
    return out


def parse_numbers(text: str, what: str) -> list[float]:
    """A comma list of finite numbers (no 'mix'); ranges are the config model's to check."""
    values = [float(x) for x in parse_list(text, what, float)]  # type: ignore[arg-type]
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{what}: expected finite numbers, got '{text[:40]}'")
    return values


def parse_ints(text: str, what: str) -> list[int]:
    """A comma list of whole numbers ('4.0' reads as 4)."""
    values = parse_numbers(text, what)
    if any(v != int(v) for v in values):
        raise UserError(f"{what}: expected whole numbers, got '{text}'")
    return [int(v) for v in values]


def parse_mix(text: str | None, what: str) -> dict[float, float] | None:
    """``"0:0.7,1.0:0.3"`` -> {0.0: 0.7, 1.0: 0.3} (TEMP:WEIGHT; a bare TEMP weighs 1)."""
    if text is None:
        return None
    out: dict[float, float] = {}
    for part in text.split(","):
        t, _, w = part.strip().partition(":")
        try:
            out[float(t)] = float(w) if w else 1.0
        except ValueError:
            raise UserError(f"{what}: expected TEMP:WEIGHT,... e.g. 0:0.7,1.0:0.3, got '{text[:40]}'") from None
    return out


def given_on_command_line(name: str) -> bool:
    """Was the parameter ``name`` typed on the command line (not a default)?"""
    try:  # recent typer vendors click as typer._click, whose context is the one running the command
        from typer._click.globals import get_current_context  # type: ignore[import-not-found]
    except ImportError:
        from click import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path`` (one-line error otherwise)."""
    if not path.exists():
        raise UserError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise UserError(f"--config {path}: not YAML or JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a mapping of field: value")
    return data


def build_config(model: type[M], flags: dict[str, tuple[str, Any]], config_file: Path | None, *,
                 section: str | None = None) -> M:
    """The config from ``config_file`` (if any) with the flags typed on the command line laid over it.

    ``flags`` maps a config field to (parameter name, parsed value). Without a file every flag counts
    (defaults included, which are the model's defaults too). ``section``: a file whose mapping holds the
    config under this key (a bench run directory's config.json keeps it under ``bench``) is read from there.
    """
    data: dict[str, Any] = read_config_file(config_file) if config_file is not None else {}
    if section is not None and isinstance(data.get(section), dict):
        data = dict(data[section])
    unknown = sorted(set(data) - set(model.model_fields))
    if unknown:
        raise UserError(f"--config {config_file}: unknown field(s) {', '.join(unknown)}; the fields are those of "
                        f"{model.__name__} (see the config written next to a run's results)")
    for field, (param, value) in flags.items():
        if config_file is None or given_on_command_line(param):
            data[field] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if "exceeded maximum size" in msg:  # pydantic's wording for a float like 1e30 given as a count
            msg = "far too large"
        where = f"--config {config_file}: " if config_file else ""
        if loc and loc[0] in flags and (config_file is None or given_on_command_line(flags[loc[0]][0])):
            # a flag's value: name the flag as typed, and the value
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 30 else shown[:27] + "..."
            raise UserError(f"--{flags[loc[0]][0].replace('_', '-')} {shown}: invalid {'.'.join(loc)}: "
                            f"{msg[:1].lower() + msg[1:]}") from None
        raise UserError(f"{where}{'.'.join(loc) + ': ' if loc else ''}{msg}") from None


def write_config(config: BaseModel, results_path: str | Path) -> Path:
    """Write ``config`` as JSON next to ``results_path`` (``<stem>.config.json``, or config.json in a directory)."""
    p = Path(results_path)
    target = p / "config.json" if p.is_dir() else p.with_name(p.stem + ".config.json")
    target.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2) + "\n")
    return target
