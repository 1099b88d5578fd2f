"""The run directory under a full disk and a torn write, end to end over HTTP: bench stops with one clear
line and everything written intact; ``--resume`` cuts the torn line off and finishes without losing a record."""

import errno
import io
import json

import pytest

from specwise.bench import store as store_mod
from tests.cli_support import exit_code

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration



class _Disk:
    """A disk with ``free`` bytes left for the run's appends: the write that does not fit lands half, then ENOSPC."""

    def __init__(self, free: int) -> None:
        self.free = free

    def open(self, path, mode="r", buffering=-1, **kw):  # noqa: ANN001, ANN201
        fh = io.open(path, mode, buffering=buffering, **kw)
        if "a" not in mode:
            return fh
        disk = self

        class Limited:
            def write(self, data):  # noqa: ANN001, ANN202
                if len(data) > disk.free:
                    fh.write(bytes(data[: max(0, disk.free)]))
                    disk.free = 0
                    raise OSError(errno.ENOSPC, "No space left on device")
                disk.free -= len(data)
                return fh.write(data)

            def close(self):  # noqa: ANN202
                fh.close()

        return Limited()


def test_full_disk_stops_cleanly_and_resume_loses_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with SSEServer(ServerBehaviour(itl_s=0.001)) as base, SSEServer(ServerBehaviour(itl_s=0.001)) as spec:
        args = ["bench", "--baseline", base.url, "--speculative", spec.url, "--qps", "40,80", "--temperatures", "0",
                "--num-requests", "12", "--max-tokens", "6", "--k", "3", "--no-lossless", "--warmup", "0",
                "--out", str(out), "--json"]
        disk = _Disk(free=25_000)
        monkeypatch.setattr(store_mod, "open", disk.open, raising=False)
        code = exit_code(args)
        err = capsys.readouterr().err
        assert code == 1, err
        assert "No space left on device" in err and "--resume --out" in err and "Traceback" not in err
        lines = (out / "records.jsonl").read_bytes().split(b"\n")
        whole = [json.loads(line) for line in lines[:-1]]  # every complete line is a whole record
        assert whole and all(set(w) == {"cell", "attempt", "record"} for w in whole)
        cell_lines = (out / "cells.jsonl").read_bytes().split(b"\n")
        assert all(json.loads(line)["cell_id"] for line in cell_lines[:-1])
        torn = bool(lines[-1] or cell_lines[-1])
        monkeypatch.undo()
        code = exit_code([*args, "--resume"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["complete"] is True and len(result["cells"]) == 4
    assert all(c["requests_ok"] == 12 and c["requests_failed"] == 0 for c in result["cells"])
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]  # no torn line left
    cells = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    for before, after in zip(cells, cells[1:]):  # wall-clock bounds, in the order the cells ran
        assert before["started_at"] < before["ended_at"] <= after["started_at"] < after["ended_at"]
    for c in cells:  # the finished attempt of every cell has all its records, once
        ids = [r["record"]["request_id"] for r in rows if r["cell"] == c["cell_id"] and r["attempt"] == c["attempt"]]
        assert len(ids) == len(set(ids)) == 12
    assert torn  # the full disk tore a line (half of it landed), and resume said it cut it off
    assert any(f["code"] == "store_repaired" for f in result["findings"])


def test_a_real_full_disk_small_tmpfs(tmp_path):
    """The same on a real full disk: a 40 KiB tmpfs mounted in a private mount namespace (``unshare -rm``), then
    remounted larger for ``--resume``. Skipped where the machine allows no such mount."""
    import os
    import shutil
    import subprocess
    import sys

    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    disk, saved = tmp_path / "disk", tmp_path / "saved"
    disk.mkdir()
    saved.mkdir()
    with SSEServer(ServerBehaviour(itl_s=0.001)) as base, SSEServer(ServerBehaviour(itl_s=0.001)) as spec:
        bench = (f'"{sys.executable}" -m specwise bench --baseline {base.url} --speculative {spec.url} --qps 40,80 '
                 "--temperatures 0 --num-requests 12 --max-tokens 6 --k 3 --no-lossless --warmup 0 "
                 f'--out "{disk}/run" --json')
        script = (f'mount -t tmpfs -o size=40k tmpfs "{disk}" || exit 77\n'
                  f'{bench} > "{saved}/first.out" 2> "{saved}/first.err"; echo $? > "{saved}/first.rc"\n'
                  f'mount -o remount,size=16m tmpfs "{disk}" || exit 78\n'
                  f'{bench} --resume > "{saved}/second.out" 2> "{saved}/second.err"; echo $? > "{saved}/second.rc"\n'
                  f'cp -r "{disk}/run" "{saved}/run"\n')
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True,
                              timeout=240)
    if proc.returncode in (77, 1) and not (saved / "first.rc").exists():
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    first_err = (saved / "first.err").read_text()
    assert (saved / "first.rc").read_text().strip() == "1", first_err
    assert "No space left on device" in first_err and "--resume --out" in first_err and "Traceback" not in first_err
    assert (saved / "second.rc").read_text().strip() == "0", (saved / "second.err").read_text()
    result = json.loads((saved / "second.out").read_text())
    assert result["complete"] is True and len(result["cells"]) == 4
    assert all(c["requests_ok"] == 12 and c["requests_failed"] == 0 for c in result["cells"])
    rows = [json.loads(line) for line in (saved / "run" / "records.jsonl").read_text().splitlines()]
    for c in (json.loads(line) for line in (saved / "run" / "cells.jsonl").read_text().splitlines()):
        ids = [r["record"]["request_id"] for r in rows if r["cell"] == c["cell_id"] and r["attempt"] == c["attempt"]]
        assert len(ids) == len(set(ids)) == 12
