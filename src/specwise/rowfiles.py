"""Reading record files (JSON Lines, a JSON list, CSV) with one error wording: file, line, what to do.

Prompt files (bench workloads, estimate prompts), simulate traces and perf step-time samples are all
"one record per row" files. They are read here so that a bad row is reported the same way everywhere:
``FILE line N: PROBLEM; WHAT TO DO`` (``item N`` for the elements of a JSON list).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from specwise.errors import UserError

FORMATS = ("jsonl", "json", "csv")


class Row(NamedTuple):
    """One decoded record and where it stands in its file (``line 3``, ``item 3``)."""

    where: str
    data: Any


def row_error(source: str, where: str, problem: str, fix: str) -> UserError:
    """The one wording for a bad row: ``FILE line N: PROBLEM; FIX``."""
    return UserError(f"{source} {where}: {problem}; {fix}")


def read_rows(path: str | Path, what: str, formats: Iterable[str] = ("jsonl",), text: str | None = None,
              source: str | None = None) -> list[Row]:
    """Decode every non-blank row of ``path`` (or of ``text``, named ``source``).

    ``formats``: which of ``jsonl`` (one JSON value per line), ``json`` (a file whose first character is
    ``[``: a JSON list) and ``csv`` (by the ``.csv`` suffix: one dict per data line) the caller accepts.
    ``what`` names the file in errors ("prompt", "trace", ...).
    """
    allowed = set(formats)
    unknown = allowed - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}")
    src = source or str(path)
    if text is None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{what} file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {what} file {p} ({exc}); pass a UTF-8 text file") from None
    if "csv" in allowed and str(path).endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        return [Row(f"line {reader.line_num}", data) for data in reader]
    if "json" in allowed and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise row_error(src, f"line {exc.lineno}", f"not valid JSON ({exc.msg})",
                            f"a {what} file that starts with '[' must be one JSON list of objects") from None
        return [Row(f"item {i + 1}", data) for i, data in enumerate(items)]
    if "jsonl" not in allowed:
        names = {"json": "a JSON list", "csv": "a .csv file"}
        raise UserError(f"{src}: a {what} file must be {' or '.join(names[k] for k in FORMATS if k in allowed)}")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Row(f"line {lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise row_error(src, f"line {lineno}", f"not valid JSON ({exc.msg})",
                            f"each line of a {what} file must be one JSON object") from None
    return rows


def require_object(row: Row, source: str, what: str) -> dict[str, Any]:
    """The row's data if it is a JSON object, else the one-line error."""
    if not isinstance(row.data, dict):
        raise row_error(source, row.where, f"expected a JSON object, got {type(row.data).__name__}",
                        f"write each {what} as {{\"key\": value, ...}}")
    return row.data


def numeric_columns(rows: list[Row], source: str, what: str, names: tuple[str, ...]) -> list[list[float]]:
    """``[[row[name] as float for name in names] for row in rows]``; a missing or non-numeric field is a
    one-line error naming its row."""
    need = f"every {what} row needs {', '.join(names)} as numbers"
    out = []
    for row in rows:
        data = require_object(row, source, what)
        values = []
        for name in names:
            if name not in data:
                raise row_error(source, row.where, f"no '{name}'", need)
            try:
                values.append(float(data[name]))
            except (TypeError, ValueError):
                raise row_error(source, row.where, f"'{name}' is {data[name]!r}, not a number", need) from None
        out.append(values)
    return out
