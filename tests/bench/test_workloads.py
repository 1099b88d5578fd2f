import json

import pytest

from specwise.bench.workloads import (
    BUILTIN_CATEGORIES,
    build_workload,
    load_jsonl,
    load_sharegpt,
    load_spec_bench,
    load_suite,
    load_workload_file,
)
from specwise.errors import UserError


@pytest.mark.parametrize("category", BUILTIN_CATEGORIES)
def test_builtin_suites_have_40_distinct_prompts(category):
    prompts = load_suite(category)
    assert len(prompts) >= 40
    texts = {p.as_text() for p in prompts}
    assert len(texts) == len(prompts)
    assert all(p.category == category and p.max_tokens for p in prompts)


def test_copy_friendly_suites_carry_their_source_text():
    # summarisation and RAG prompts include the document, so n-gram speculation can copy from it
    for p in load_suite("summarization") + load_suite("rag_qa"):
        assert len(p.as_text()) > 300
    for p in load_suite("json_extraction"):
        assert '"type": "object"' in p.as_text()


def test_sampling_is_seeded_and_mixed_weights_apply():
    wl = build_workload("mixed")
    a = wl.sample(200, seed=7, temperature=0.7)
    b = wl.sample(200, seed=7, temperature=0.7)
    assert [r.prompt.prompt_id for r in a] == [r.prompt.prompt_id for r in b]
    assert {r.category for r in a} == set(BUILTIN_CATEGORIES)
    assert all(r.temperature == 0.7 for r in a)
    weighted = build_workload("chat:3,code:1").sample(400, seed=1)
    share = sum(r.category == "chat" for r in weighted) / 400
    assert 0.65 < share < 0.85


def test_homogeneous_workload_covers_suite_before_repeating():
    wl = build_workload("code")
    reqs = wl.sample(40, seed=3)
    assert len({r.prompt.prompt_id for r in reqs}) == 40


def test_temperature_distribution_when_cell_does_not_fix_it():
    wl = build_workload("chat", temperatures={0.0: 1.0, 1.0: 1.0})
    temps = [r.temperature for r in wl.sample(400, seed=2)]
    assert set(temps) == {0.0, 1.0}
    assert 0.4 < temps.count(1.0) / 400 < 0.6


def test_loaders(tmp_path):
    sg = tmp_path / "sg.json"
    sg.write_text(json.dumps([
        {"id": "a", "conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello"}]},
        {"id": "b", "conversations": [{"from": "gpt", "value": "only a reply"}]},
    ]))
    assert [p.as_text() for p in load_sharegpt(sg)] == ["hi there"]
    sb = tmp_path / "spec_bench.jsonl"
    sb.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]}) + "\n")
    p = load_spec_bench(sb)[0]
    assert (p.category, p.as_text(), p.prompt_id) == ("writing", "Write a poem.", "81")
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        json.dumps({"prompt": "Count to 5", "max_tokens": 20, "temperature": 0.3, "category": "toy"}) + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "hey"}]}) + "\n"
    )
    rows = load_jsonl(plain)
    assert rows[0].max_tokens == 20 and rows[0].temperature == 0.3 and rows[1].category == "custom"
    assert load_workload_file(sb)[0].source == "spec_bench"
    assert build_workload(str(plain)).sample(2, seed=0, temperature=None)[0].temperature in (0.3, 0.0)


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="built-in suites"):
        build_workload("poetry")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(UserError, match="line 1"):
        load_jsonl(bad)
    nothing = tmp_path / "x.jsonl"
    nothing.write_text(json.dumps({"text": "no prompt key"}) + "\n")
    with pytest.raises(UserError, match="prompt"):
        load_jsonl(nothing)


def test_random_workload_is_marked_synthetic():
    wl = build_workload("random")
    assert wl.synthetic and len(wl.prompts) == 100
    assert wl.sample(3, seed=0)[0].category == "random"
