"""The on-disk record of one bench run: one directory, written as the run goes.

Layout (``--out DIR``)::

    config.json       the full BenchConfig, tool version, python/platform (written first)
    records.jsonl     one line per finished request: {"cell", "attempt", "record": RequestRecord}
    cells.jsonl       one line per finished cell: CellRun (summary, /metrics delta, gauges, saturation)
    servers/ROLE.json server info (version, speculative config, engine settings); ROLE.log startup log
    lossless.json     the losslessness check
    summary.json      the RunResult (at the end, and on Ctrl-C with what was measured)

Lines are flushed as they are written, so an interrupted run loses at most the requests in flight.
``--resume`` reloads finished cells and re-runs an interrupted cell from its start (its partial
records stay in the file under the old attempt number and are ignored): a load-test cell cut in
half cannot be completed later at the same load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from specwise.errors import UserError
from specwise.schemas.results import RequestRecord

__all__ = ["RunStore"]


class RunStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._records_fh = None
        self._cells_fh = None

    # --- creation / resume -----------------------------------------------------------------------
    def create(self, config: dict[str, Any], *, resume: bool) -> None:
        """Start a fresh run, or check that ``config`` matches the run being resumed."""
        cfg_path = self.root / "config.json"
        if resume:
            if not cfg_path.exists():
                raise UserError(f"--resume: {self.root} holds no bench run (no config.json)")
            old = json.loads(cfg_path.read_text())
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
        else:
            if (self.root / "records.jsonl").exists():
                raise UserError(f"{self.root} already holds a run; pass --resume to continue it or pick a new --out")
            self.root.mkdir(parents=True, exist_ok=True)
            cfg_path.write_text(json.dumps(config, indent=2, default=str))
        (self.root / "servers").mkdir(parents=True, exist_ok=True)
        self._records_fh = open(self.root / "records.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._cells_fh = open(self.root / "cells.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        for fh in (self._records_fh, self._cells_fh):
            if fh is not None:
                fh.close()
        self._records_fh = self._cells_fh = None

    # --- appends ---------------------------------------------------------------------------------
    def append_record(self, cell_id: str, attempt: int, record: RequestRecord) -> None:
        assert self._records_fh is not None
        line = {"cell": cell_id, "attempt": attempt, "record": record.model_dump(mode="json", exclude_defaults=True)}
        self._records_fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._records_fh.flush()

    def append_cell(self, cell: BaseModel) -> None:
        assert self._cells_fh is not None
        self._cells_fh.write(cell.model_dump_json() + "\n")
        self._cells_fh.flush()

    def write_json(self, name: str, obj: BaseModel | dict) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = obj.model_dump_json(indent=2) if isinstance(obj, BaseModel) else json.dumps(obj, indent=2, default=str)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def path(self, name: str) -> Path:
        return self.root / name

    # --- reading back ----------------------------------------------------------------------------
    def finished_cells(self) -> list[dict]:
        path = self.root / "cells.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a crash mid-write
        return out

    def records(self) -> dict[tuple[str, int], list[RequestRecord]]:
        """Records grouped by (cell id, attempt); a torn last line is skipped."""
        path = self.root / "records.jsonl"
        out: dict[tuple[str, int], list[RequestRecord]] = {}
        if not path.exists():
            return out
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.setdefault((row["cell"], int(row["attempt"])), []).append(RequestRecord(**row["record"]))
        return out
