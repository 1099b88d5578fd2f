"""The run store: whole-line appends, torn tails repaired on resume, full disks, --out never overwriting."""

import errno
import json
import os

import pytest

from specwise.bench.store import RunStore, StoreWriteError
from specwise.errors import UserError
from specwise.schemas import RequestRecord

CFG = {"bench": {"qps": [1.0], "seed": 0}}


def _rec(i):
    return RequestRecord(request_id=f"r{i}", role="baseline", ttft_s=0.1, e2e_s=0.5, output_tokens=4)


def _fresh(root):
    store = RunStore(root)
    store.create(CFG, resume=False)
    return store


def test_a_torn_last_line_is_cut_off_on_resume_and_nothing_is_lost(tmp_path):
    store = _fresh(tmp_path / "run")
    for i in range(3):
        store.append_record("c", 0, _rec(i))
    store.close()
    path = tmp_path / "run" / "records.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"cell":"c","attempt":0,"record":{"request_id":"r3","ro')  # write cut short
    resumed = RunStore(tmp_path / "run")
    resumed.create(CFG, resume=True)
    assert path.read_bytes() == whole
    assert any("torn last line" in n for n in resumed.notes)
    resumed.append_record("c", 1, _rec(4))  # the first record after resuming is whole and readable
    resumed.close()
    recs = RunStore(tmp_path / "run").records()
    assert [r.request_id for r in recs[("c", 0)]] == ["r0", "r1", "r2"] and recs[("c", 1)][0].request_id == "r4"


def test_a_full_disk_stops_with_a_clear_error_and_leaves_whole_lines(tmp_path, monkeypatch):
    store = _fresh(tmp_path / "run")
    store.append_record("c", 0, _rec(0))
    fh = store._records._fh
    real_write = fh.write
    calls = {"n": 0}

    class Full:
        def write(self, data):
            calls["n"] += 1
            if calls["n"] == 1:  # half a line reaches the disk, then ENOSPC
                real_write(bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, "No space left on device")
            raise AssertionError("nothing is written after a failed write")

        def close(self):
            fh.close()

    store._records._fh = Full()
    with pytest.raises(StoreWriteError, match="No space left on device.*--resume") as exc:
        store.append_record("c", 0, _rec(1))
    assert exc.value.exit_code == 1
    with pytest.raises(StoreWriteError):  # and every later append says the same, writing nothing
        store.append_record("c", 0, _rec(2))
    store.close()
    resumed = RunStore(tmp_path / "run")
    resumed.create(CFG, resume=True)  # the half line is cut off; the record before it is intact
    assert [r.request_id for r in resumed.records()[("c", 0)]] == ["r0"]
    resumed.close()


def test_summary_write_failure_is_a_store_error(tmp_path, monkeypatch):
    store = _fresh(tmp_path / "run")
    store.write_json("summary.json", {"a": 1})

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_text", full)
    with pytest.raises(StoreWriteError, match="summary.json"):
        store.write_json("summary.json", {"a": 2})
    monkeypatch.undo()
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"a": 1}  # the old version is intact
    store.close()


@pytest.mark.parametrize("damage,msg", [
    ('{"bench": {"qps": [1.0]', "cannot be read"),
    ("[1, 2]", "not a bench run's config"),
    ('{"tool_version": "x"}', "not a bench run's config"),
])
def test_resume_refuses_a_damaged_config_with_what_is_wrong(tmp_path, damage, msg):
    _fresh(tmp_path / "run").close()
    (tmp_path / "run" / "config.json").write_text(damage)
    with pytest.raises(UserError, match=msg):
        RunStore(tmp_path / "run").create(CFG, resume=True)


@pytest.mark.parametrize("line,msg", [
    ("not json at all", "line 2 is not a JSON object"),
    ('{"cell": "c", "attempt": "x", "record": {}}', "line 2 is not a request record"),
    ('{"cell": "c", "attempt": 0, "record": {"role": "nobody"}}', "line 2 is not a request record"),
    ('{"cell": "c", "attempt": 1e400, "record": {"request_id": "a", "role": "baseline"}}', "line 2"),
])
def test_resume_names_a_damaged_records_line(tmp_path, line, msg):
    store = _fresh(tmp_path / "run")
    store.append_record("c", 0, _rec(0))
    store.close()
    with open(tmp_path / "run" / "records.jsonl", "a") as f:
        f.write(line + "\n")
    resumed = RunStore(tmp_path / "run")
    resumed.create(CFG, resume=True)
    with pytest.raises(UserError, match=msg):
        resumed.records()
    resumed.close()


def test_out_refuses_what_it_did_not_write(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_text("meow")
    with pytest.raises(UserError, match="holds no specwise bench run.*--out NEW.*--resume"):
        RunStore(other).create(CFG, resume=False)
    with pytest.raises(UserError, match="holds no specwise bench run"):
        RunStore(other).create(CFG, resume=False, overwrite=True)
    assert (other / "cat.jpg").read_text() == "meow" and not (other / "config.json").exists()
    (tmp_path / "empty").mkdir()
    _fresh(tmp_path / "empty").close()  # an empty directory is fine


def test_an_existing_run_needs_resume_or_overwrite(tmp_path):
    store = _fresh(tmp_path / "run")
    store.append_record("c", 0, _rec(0))
    store.close()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds a bench run: pass --resume.*--overwrite"):
        RunStore(tmp_path / "run").create(CFG, resume=False)
    replaced = RunStore(tmp_path / "run")
    replaced.create({"bench": {"qps": [2.0]}}, resume=False, overwrite=True)
    replaced.close()
    assert (tmp_path / "run" / "records.jsonl").read_text() == ""
    assert json.loads((tmp_path / "run" / "config.json").read_text())["bench"]["qps"] == [2.0]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_out_that_is_a_file_or_under_one_is_a_user_error(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        RunStore(f).create(CFG, resume=False)
    with pytest.raises(UserError, match="which is a file"):
        RunStore(f / "run").create(CFG, resume=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_out_is_a_user_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write there"):
            RunStore(ro / "run").create(CFG, resume=False)
    finally:
        ro.chmod(0o700)


def test_unwritable_out_is_a_user_error_also_as_root(tmp_path, monkeypatch):
    def denied(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("pathlib.Path.mkdir", denied)
    with pytest.raises(UserError, match=r"cannot write there \(Permission denied\)"):
        RunStore(tmp_path / "new" / "run").create(CFG, resume=False)
