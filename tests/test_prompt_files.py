"""One prompt-file reader for bench and estimate: formats, defaults and error wording."""

import json

import pytest

from specwise.bench.workloads import load_workload_file
from specwise.errors import UserError
from specwise.estimate.prompts import load_prompts
from specwise.prompt_files import read_prompt_file


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_format_in_one_file(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", [
        {"prompt": "Count to 5", "max_tokens": 20, "temperature": 0.3, "category": "toy", "response": "1 2"},
        {"prompt_id": "m1", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
        {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
        {"id": "sg", "conversations": [{"from": "human", "value": "hello"}, {"from": "gpt", "value": "hey"}]},
        {"id": "orphan", "conversations": [{"from": "gpt", "value": "no question"}]},
        {"question_id": 82, "turns": []},
    ])
    rows = read_prompt_file(path, default_category="custom")
    assert [(r.format, r.id, r.category) for r in rows] == [
        ("plain", "toy-0000", "toy"), ("plain", "m1", "custom"), ("spec_bench", "81", "writing"),
        ("sharegpt", "sg", "chat")]
    assert rows[0].response == "1 2" and rows[3].response == "hey" and rows[3].messages[0].content == "hello"
    assert [r.where for r in rows] == ["line 1", "line 2", "line 3", "line 4"]
    # both stages take the same file and agree on what is in it
    prompts = load_workload_file(path)
    records = load_prompts(path)
    assert [p.prompt_id for p in prompts] == [r.id for r in records]
    assert prompts[0].text == "Count to 5" and prompts[0].as_messages() == [{"role": "user", "content": "Count to 5"}]
    assert [p.source for p in prompts[2:]] == ["spec_bench", "sharegpt"]
    assert records[0].prompt == "Count to 5" and records[0].messages is None and records[0].max_tokens == 20


def test_one_error_wording_for_both_stages(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"text": "no prompt key"}])
    for load in (load_workload_file, load_prompts):
        with pytest.raises(UserError, match="bad.jsonl line 2: none of 'prompt', 'messages', 'turns' or "
                                            "'conversations'; give each request 'prompt'"):
            load(bad)
    _write(bad, [{"prompt": "ok", "max_tokens": 0}])
    with pytest.raises(UserError, match="bad.jsonl line 1: 'max_tokens' .*greater than or equal to 1; fix that field"):
        read_prompt_file(bad)
    _write(bad, [{"messages": [{"role": "robot", "content": "x"}]}])
    with pytest.raises(UserError, match="bad.jsonl line 1: bad 'messages'.*roles are system, user or assistant"):
        load_workload_file(bad)
    listing = tmp_path / "share.json"
    listing.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}]}, 3]))
    with pytest.raises(UserError, match="share.json item 2: expected a JSON object, got int"):
        load_prompts(listing)
    empty = _write(tmp_path / "empty.jsonl", [{"id": "x", "conversations": []}])
    for load in (load_workload_file, load_prompts):
        with pytest.raises(UserError, match="empty.jsonl: no prompts found"):
            load(empty)
