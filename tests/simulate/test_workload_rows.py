"""Trace and dataset rows are checked where they are read: token counts in range, finite numbers, bounded
replays (issue 13: a value like 1e300 used to wrap around in int64)."""

from __future__ import annotations

import pytest

from specwise.errors import UserError
from specwise.schemas.limits import MAX_SIM_REQUESTS
from specwise.simulate.workload import load_rows
from tests.hostile import assert_one_line


@pytest.mark.parametrize("row,match", [
    ('{"timestamp": 0, "prompt_tokens": 1e300, "output_tokens": 5}', "outside"),
    ('{"timestamp": 0, "prompt_tokens": -3, "output_tokens": 5}', "outside"),
    ('{"timestamp": NaN, "prompt_tokens": 3, "output_tokens": 5}', "not a finite number"),
    ('{"timestamp": 0, "prompt_tokens": 3, "output_tokens": Infinity}', "not a finite number"),
])
def test_bad_trace_rows_are_one_line_errors(tmp_path, row, match):
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "prompt_tokens": 3, "output_tokens": 5}\n' + row + "\n")
    with pytest.raises(UserError, match=match) as info:
        load_rows(str(path), need_timestamp=True)
    assert_one_line(str(info.value))


def test_a_trace_longer_than_the_replay_bound_is_refused(tmp_path, monkeypatch):
    import specwise.simulate.workload

    assert MAX_SIM_REQUESTS >= 10_000
    monkeypatch.setattr(specwise.simulate.workload, "MAX_SIM_REQUESTS", 100)  # the bound depends on the machine
    path = tmp_path / "t.csv"
    path.write_text("timestamp,prompt_tokens,output_tokens\n" + "0,1,1\n" * 101)
    with pytest.raises(UserError, match="at most 100 "):
        load_rows(str(path), need_timestamp=True)
    _, pt, _ = load_rows(str(path), need_timestamp=False)  # a dataset is sampled, so it may be longer
    assert pt.size == 101
