"""The on-disk record of one bench run: one directory, written as the run goes.

Layout (``--out DIR``)::

    config.json       the full BenchConfig, tool version, python/platform (written first)
    records.jsonl     one line per finished request: {"cell", "attempt", "record": RequestRecord}
    cells.jsonl       one line per finished cell: CellRun (summary, /metrics delta, gauges, saturation)
    servers/ROLE.json server info (version, speculative config, engine settings); ROLE.log startup log
    lossless.json     the losslessness check
    summary.json      the RunResult (at the end, and on Ctrl-C with what was measured)

Every line is written whole with one unbuffered write and nothing else is appended after a failed one,
so an interrupted run loses at most the requests in flight and at worst leaves one torn last line;
``--resume`` cuts that line off (with a note) before appending. A failed write (disk full, ...) raises
:class:`StoreWriteError`: the run stops with everything before it intact. ``--resume`` reloads finished
cells and re-runs an interrupted cell from its start (its partial records stay in the file under the
old attempt number and are ignored): a load-test cell cut in half cannot be completed later at the
same load.

``--out`` never overwrites what it did not write: a non-empty directory without a bench run is refused,
and a bench run there needs ``--resume`` (continue) or ``--overwrite`` (replace).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from specwise.errors import UserError
from specwise.schemas.results import RequestRecord

__all__ = ["RUN_FILES", "RunStore", "StoreWriteError"]

# What a bench run writes (and --overwrite removes); nothing else in the directory is touched.
RUN_FILES = ("config.json", "records.jsonl", "cells.jsonl", "servers", "lossless.json", "lossless_samples.json",
             "summary.json")


class StoreWriteError(UserError):
    """Writing the run directory failed (disk full, permissions): the run stops, what was written is intact."""

    exit_code = 1


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class _JsonLines:
    """An append-only JSON-lines file: whole lines, one unbuffered write each, nothing after a failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by RunStore.close
        self.failed: StoreWriteError | None = None

    def append(self, line: str) -> None:
        if self.failed is not None:
            raise self.failed
        data = (line + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                written = self._fh.write(view)
                view = view[written or 0:]
        except OSError as exc:
            root = self.path.parent
            self.failed = StoreWriteError(
                f"cannot write {self.path} ({_why(exc)}): the run stopped; everything written before is intact. "
                f"Free space (or fix permissions), then continue with the same options and --resume --out {root}")
            raise self.failed from None

    def close(self) -> None:
        self._fh.close()


class RunStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._records: _JsonLines | None = None
        self._cells: _JsonLines | None = None
        self.notes: list[str] = []  # what resuming repaired, for the run's findings

    # --- creation / resume -----------------------------------------------------------------------
    def holds_run(self) -> bool:
        return (self.root / "config.json").is_file() or (self.root / "records.jsonl").is_file()

    def create(self, config: dict[str, Any], *, resume: bool, overwrite: bool = False) -> None:
        """Start a fresh run, or check that ``config`` matches the run being resumed (and repair a torn tail)."""
        self._check_out_path()
        if resume:
            self._check_resume(config)
            self._repair_tail("records.jsonl")
            self._repair_tail("cells.jsonl")
        else:
            self._prepare_fresh(overwrite)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._write_text(self.root / "config.json", json.dumps(config, indent=2, default=str))
            except OSError as exc:
                raise UserError(f"--out {self.root}: cannot write there ({_why(exc)}); pick a writable directory") \
                    from None
        try:
            (self.root / "servers").mkdir(parents=True, exist_ok=True)
            self._records = _JsonLines(self.root / "records.jsonl")
            self._cells = _JsonLines(self.root / "cells.jsonl")
        except OSError as exc:
            raise UserError(f"--out {self.root}: cannot write there ({_why(exc)}); pick a writable directory") \
                from None

    def _check_out_path(self) -> None:
        for parent in [self.root, *self.root.parents]:
            if parent.exists() and not parent.is_dir():
                where = "is a file" if parent == self.root else f"is under {parent}, which is a file"
                raise UserError(f"--out {self.root} {where}; give a directory path (a new one, or a run to --resume)")

    def _prepare_fresh(self, overwrite: bool) -> None:
        if not self.root.exists() or not any(self.root.iterdir()):
            return
        if not self.holds_run():
            raise UserError(f"--out {self.root} exists, is not empty and holds no specwise bench run: give "
                            "--out NEW (a new directory), or --resume to continue a run")
        if not overwrite:
            raise UserError(f"--out {self.root} already holds a bench run: pass --resume to continue it, "
                            "--overwrite to replace it, or give --out NEW")
        for name in RUN_FILES:
            path = self.root / name
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            except OSError as exc:
                raise UserError(f"--overwrite: cannot remove {path} ({_why(exc)})") from None

    def _check_resume(self, config: dict[str, Any]) -> None:
        cfg_path = self.root / "config.json"
        if not cfg_path.exists():
            raise UserError(f"--resume: {self.root} holds no bench run (no config.json)")
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise UserError(f"--resume: {cfg_path} cannot be read ({type(exc).__name__}: truncated or edited); "
                            "it is the record of the run's options, so the run cannot be continued: start a new "
                            "one with --out NEW") from None
        if not isinstance(old, dict) or not isinstance(old.get("bench"), dict):
            raise UserError(f"--resume: {cfg_path} is not a bench run's config (no \"bench\" object); start a new "
                            "run with --out NEW")
        # how many client processes stream the load changes no request, schedule or measurement
        free = ("resume", "out", "client_workers")
        # an option added after the run was written reads as unset (None / empty), its default
        unset = (None, {}, [])
        differing = sorted(k for k in set(old["bench"]) | set(config["bench"])
                           if k not in free and old["bench"].get(k) != config["bench"].get(k)
                           and not (k not in old["bench"] and config["bench"].get(k) in unset))
        if differing:
            raise UserError(
                f"--resume: the options differ from the interrupted run ({', '.join(differing)}); "
                "rerun with the same options or use a new --out"
            )

    def _repair_tail(self, name: str) -> None:
        """Cut a torn last line (a write cut short by a crash or a full disk) off ``name``, with a note."""
        path = self.root / name
        if not path.exists():
            return
        try:
            with open(path, "rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(max(0, size - 1))
                if fh.read(1) == b"\n":
                    return
                # find the end of the last complete line
                pos, chunk = size, 65536
                keep = 0
                while pos > 0:
                    start = max(0, pos - chunk)
                    fh.seek(start)
                    block = fh.read(pos - start)
                    nl = block.rfind(b"\n")
                    if nl >= 0:
                        keep = start + nl + 1
                        break
                    pos = start
                fh.truncate(keep)
        except OSError as exc:
            raise UserError(f"--resume: cannot repair {path} ({_why(exc)})") from None
        self.notes.append(f"{name}: a torn last line ({size - keep} bytes, a write cut short) was removed on resume")

    def close(self) -> None:
        for lines in (self._records, self._cells):
            if lines is not None:
                lines.close()
        self._records = self._cells = None

    # --- appends ---------------------------------------------------------------------------------
    def append_record(self, cell_id: str, attempt: int, record: RequestRecord) -> None:
        if self._records is None:
            raise RuntimeError("the run store is closed")
        line = {"cell": cell_id, "attempt": attempt, "record": record.model_dump(mode="json", exclude_defaults=True)}
        self._records.append(json.dumps(line, separators=(",", ":")))

    def append_cell(self, cell: BaseModel) -> None:
        if self._cells is None:
            raise RuntimeError("the run store is closed")
        self._cells.append(cell.model_dump_json())

    def _write_text(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        try:
            tmp.write_text(text)
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def write_json(self, name: str, obj: BaseModel | dict) -> Path:
        """Write ``name`` whole (temporary file, then rename): a failure leaves the previous version."""
        path = self.root / name
        text = obj.model_dump_json(indent=2) if isinstance(obj, BaseModel) else json.dumps(obj, indent=2, default=str)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_text(path, text)
        except OSError as exc:
            raise StoreWriteError(f"cannot write {path} ({_why(exc)}): the run stopped; everything written before "
                                  f"is intact. Free space, then continue with --resume --out {self.root}") from None
        return path

    def path(self, name: str) -> Path:
        return self.root / name

    # --- reading back ----------------------------------------------------------------------------
    def _lines(self, name: str) -> list[tuple[int, dict]]:
        """(line number, object) of every line of ``name``; a damaged line is a clear error (resume repairs
        only a torn last line, which a crash explains; a damaged line in the middle means the file was edited)."""
        path = self.root / name
        if not path.exists():
            return []
        out = []
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--resume: {path} cannot be read ({type(exc).__name__}); start a new run with "
                            "--out NEW") from None
        lines = text.split("\n")
        torn = lines[-1] if not text.endswith("\n") else ""
        for i, line in enumerate(lines[:-1] if lines else [], start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                obj = None
            if not isinstance(obj, dict):
                raise UserError(f"--resume: {path} line {i} is not a JSON object ({line[:60]!r}): the file was "
                                "damaged or edited; remove that line, or start a new run with --out NEW")
            out.append((i, obj))
        if torn.strip():
            self.notes.append(f"{name}: a torn last line was ignored")
        return out

    def finished_cells(self) -> list[dict]:
        return [obj for _, obj in self._lines("cells.jsonl")]

    def records(self) -> dict[tuple[str, int], list[RequestRecord]]:
        """Records grouped by (cell id, attempt); a line that is not a record is a clear error."""
        out: dict[tuple[str, int], list[RequestRecord]] = {}
        for i, row in self._lines("records.jsonl"):
            try:
                key = (str(row["cell"]), int(row["attempt"]))
                rec = RequestRecord(**row["record"])
            except (KeyError, TypeError, ValueError, OverflowError, ValidationError) as exc:
                raise UserError(f"--resume: {self.root / 'records.jsonl'} line {i} is not a request record "
                                f"({type(exc).__name__}); remove that line, or start a new run with --out NEW") \
                    from None
            out.setdefault(key, []).append(rec)
        return out
