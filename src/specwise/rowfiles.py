"""Reading record files (JSON Lines, a JSON list, CSV) with one error wording: file, line, what to do.

Prompt files (bench workloads, estimate prompts), simulate traces and perf step-time samples are all
"one record per row" files. They are read here so that a bad row is reported the same way everywhere:
``FILE line N: PROBLEM; WHAT TO DO`` (``item N`` for the elements of a JSON list).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from specwise.errors import UserError

FORMATS = ("jsonl", "json", "csv")

# Deepest nesting a row may have. Real rows are 3-4 levels deep (a chat message list of objects); a limit
# well below Python's recursion limit keeps every later step (pydantic, str(), json.dumps) from recursing
# into a RecursionError on a hostile file.
MAX_NESTING = 32


class Row(NamedTuple):
    """One decoded record and where it stands in its file (``line 3``, ``item 3``)."""

    where: str
    data: Any


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar is 0), counted without recursion; stops counting
    once it passes ``limit``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((x, depth) for x in item if isinstance(x, (list, dict)))
    return deepest


def loads_bounded(text: str, limit: int = MAX_NESTING) -> Any:
    """``json.loads`` that refuses, with a :class:`ValueError`, nesting deeper than ``limit`` (Python's own
    decoder raises RecursionError near depth 1000) and strings with a lone UTF-16 surrogate (``"\\ud800"``
    decodes, but no UTF-8 writer or HTTP body can carry it). Malformed JSON raises :class:`json.JSONDecodeError`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {limit} levels deep") from None
    if nesting_depth(value, limit) > limit:
        raise ValueError(f"nested more than {limit} levels deep")
    # A surrogate arrives through a \\uD800-\\uDFFF escape (or as a character of text passed in; files read as
    # UTF-8 cannot hold one), so the walk over every string runs only for such texts (emoji pairs in
    # ASCII-escaped JSON); plain substring tests and one encode keep the common case at C speed.
    if ("\\ud" in text or "\\uD" in text or not _encodes(text)) and _has_lone_surrogate(value):
        raise ValueError("holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not text")
    return value


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


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
        try:
            return [Row(f"line {reader.line_num}", data) for data in reader]
        except csv.Error as exc:
            raise row_error(src, f"line {reader.line_num}", f"not valid CSV ({exc})",
                            f"write the {what} file as CSV with a header line") from None
    if "json" in allowed and text.lstrip().startswith("["):
        try:
            items = loads_bounded(text, MAX_NESTING + 1)  # the list itself is one level
        except json.JSONDecodeError as exc:
            raise row_error(src, f"line {exc.lineno}", f"not valid JSON ({exc.msg})",
                            f"a {what} file that starts with '[' must be one JSON list of objects") from None
        except ValueError as exc:
            raise UserError(f"{src}: {exc}; a {what} file is a JSON list of flat objects") from None
        if not isinstance(items, list):
            raise UserError(f"{src}: not one JSON list; a {what} file that starts with '[' must be one JSON "
                            "list of objects")
        return [Row(f"item {i + 1}", data) for i, data in enumerate(items)]
    if "jsonl" not in allowed:
        names = {"json": "a JSON list", "csv": "a .csv file"}
        raise UserError(f"{src}: a {what} file must be {' or '.join(names[k] for k in FORMATS if k in allowed)}")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Row(f"line {lineno}", loads_bounded(line)))
        except json.JSONDecodeError as exc:
            raise row_error(src, f"line {lineno}", f"not valid JSON ({exc.msg})",
                            f"each line of a {what} file must be one JSON object") from None
        except ValueError as exc:
            raise row_error(src, f"line {lineno}", str(exc), f"each line of a {what} file must be one flat "
                            "JSON object") from None
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
                value = float(data[name])
            except (TypeError, ValueError, OverflowError):
                value = math.nan
            if not math.isfinite(value) or isinstance(data[name], bool):
                shown = repr(data[name])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise row_error(source, row.where, f"'{name}' is {shown}, not a finite number", need) from None
            values.append(value)
        out.append(values)
    return out
