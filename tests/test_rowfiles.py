"""Record files: JSONL, JSON list and CSV rows, with one error wording (file, line, what to do)."""

import pytest

from specwise.errors import UserError
from specwise.perf.calibrate import load_step_samples
from specwise.rowfiles import numeric_columns, read_rows
from specwise.simulate.workload import load_rows


def test_jsonl_rows_keep_their_line_numbers(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_rows(path, "test") == [("line 1", {"a": 1}), ("line 3", {"a": 2})]


def test_json_list_and_csv_only_where_accepted(tmp_path):
    listing = tmp_path / "x.json"
    listing.write_text('[{"a": 1}, {"a": 2}]')
    assert [r.where for r in read_rows(listing, "test", formats=("jsonl", "json"))] == ["item 1", "item 2"]
    assert read_rows(listing, "test") == [("line 1", [{"a": 1}, {"a": 2}])]  # without "json": one JSONL value
    table = tmp_path / "x.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    rows = read_rows(table, "test", formats=("jsonl", "csv"))
    assert rows[1] == ("line 3", {"a": "3", "b": "4"})
    assert numeric_columns(rows, str(table), "test", ("b", "a")) == [[2.0, 1.0], [4.0, 3.0]]


def test_errors_name_file_line_and_fix(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(UserError, match=r"bad.jsonl line 2: not valid JSON \(.*\); each line of a test file must "
                                        "be one JSON object"):
        read_rows(path, "test")
    with pytest.raises(UserError, match="test file not found"):
        read_rows(tmp_path / "missing.jsonl", "test")
    path.write_text('{"a": 1}\n{"a": "x"}\n[1]\n')
    rows = read_rows(path, "test")
    with pytest.raises(UserError, match=r"line 2: 'a' is 'x', not a finite number; every test row needs a as numbers"):
        numeric_columns(rows, str(path), "test", ("a",))
    with pytest.raises(UserError, match="line 3: expected a JSON object, got list"):
        numeric_columns(rows[2:], str(path), "test", ("a",))
    with pytest.raises(UserError, match="line 1: no 'b'"):
        numeric_columns(rows, str(path), "test", ("a", "b"))


def test_simulate_traces_and_perf_step_files_use_it(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"timestamp": 5, "prompt_tokens": 10, "output_tokens": 3}\n'
                     '{"timestamp": 2, "prompt_tokens": 20, "output_tokens": 4}\n')
    ts, pt, ot = load_rows(str(trace), need_timestamp=True)
    assert list(ts) == [0.0, 3.0] and list(pt) == [20, 10] and list(ot) == [4, 3]
    trace.write_text('{"prompt_tokens": 10}\n')
    with pytest.raises(UserError, match="trace.jsonl line 1: no 'output_tokens'; every trace row needs"):
        load_rows(str(trace), need_timestamp=False)
    steps = tmp_path / "steps.jsonl"
    steps.write_text('{"n_tokens": 1, "kv_tokens": 100, "seconds": 0.006}\nnot json\n')
    with pytest.raises(UserError, match="steps.jsonl line 2: not valid JSON"):  # was a traceback
        load_step_samples(str(steps))


def test_format_errors_for_lists_and_files_of_the_wrong_kind(tmp_path):
    listing = tmp_path / "x.json"
    listing.write_text('[{"a": 1},\n {"a": ]')
    with pytest.raises(UserError, match="x.json line 2: not valid JSON .*must be one JSON list of objects"):
        read_rows(listing, "test", formats=("jsonl", "json"))
    lines = tmp_path / "x.jsonl"
    lines.write_text('{"a": 1}\n')
    with pytest.raises(UserError, match="x.jsonl: a test file must be a JSON list or a .csv file"):
        read_rows(lines, "test", formats=("json", "csv"))
