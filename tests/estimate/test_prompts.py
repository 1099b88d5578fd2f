"""Prompt-set loaders: plain JSONL, ShareGPT JSON, Spec-Bench JSONL."""

import json
from pathlib import Path

import pytest

from specwise.errors import UserError
from specwise.estimate.prompts import load_prompts

DATA = Path(__file__).parent / "data" / "prompts.jsonl"


def test_shipped_prompt_file_loads():
    records = load_prompts(DATA)
    assert len(records) >= 8
    assert {r.category for r in records} >= {"code", "chat"}
    assert all(r.messages for r in records)


def test_sharegpt_and_specbench_rows(tmp_path):
    share = [{"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
             {"id": "b", "conversations": [{"from": "gpt", "value": "orphan"}]}]
    path = tmp_path / "share.json"
    path.write_text(json.dumps(share))
    records = load_prompts(path)
    assert [r.id for r in records] == ["a"]
    assert records[0].messages[0].content == "hi" and records[0].response == "hello"
    path = tmp_path / "spec_bench.jsonl"
    path.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Compose a blog post", "x"]}))
    spec = load_prompts(path)
    assert spec[0].id == "81" and spec[0].category == "writing" and spec[0].messages[0].content.startswith("Compose")


def test_bad_rows_are_user_errors(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(UserError, match="bad.jsonl line 2: none of 'prompt'"):
        load_prompts(path)
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(UserError, match="bad.jsonl line 2: not valid JSON"):
        load_prompts(path)
    with pytest.raises(UserError, match="not found"):
        load_prompts(tmp_path / "missing.jsonl")
    path.write_text('{"id": 1, "prompt": "a"}\n{"id": "1", "prompt": "b"}\n')
    with pytest.raises(UserError, match="line 2: request id '1' repeats line 1"):
        load_prompts(path)


def test_server_token_ids_are_used_as_given(tmp_path):
    """Rows carrying a server's own ids (vLLM's return_token_ids) are replayed exactly, not re-tokenised."""
    from specwise.estimate.prompts import prompt_token_ids, response_token_ids

    path = tmp_path / "served.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}],
                                "prompt_token_ids": [1, 5, 9], "response_token_ids": [7, 7, 2]}) + "\n")
    record = load_prompts(path)[0]

    class NoTokenizer:  # any use of the tokenizer would be a re-tokenisation
        chat_template = "x"

        def __getattr__(self, name):
            raise AssertionError(f"tokenizer.{name} used")

    assert prompt_token_ids(record, NoTokenizer()) == [1, 5, 9]
    assert response_token_ids(record, NoTokenizer()) == [7, 7, 2]
    path.write_text(json.dumps({"id": "a", "prompt": "hi", "response_token_ids": [3, -1]}) + "\n")
    with pytest.raises(UserError, match="response_token_ids"):
        load_prompts(path)
