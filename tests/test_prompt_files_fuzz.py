"""Prompt and row files under hostile input: every case parses or is a one-line UserError naming the file and
row, never a traceback (issue 13: deep nesting RecursionError, ``turns: 5`` / ``conversations: 5`` TypeError)."""

from __future__ import annotations

import json
import random
import time

import pytest

from specwise.errors import UserError
from specwise.prompt_files import read_prompt_file
from specwise.rowfiles import MAX_NESTING, nesting_depth, numeric_columns, read_rows
from tests.hostile import assert_one_line, json_value, mutate_text, nested


def _prompt(text: str) -> list:
    return read_prompt_file("p.jsonl", text=text, source="p.jsonl")


@pytest.mark.parametrize("row", [
    {"turns": 5}, {"conversations": 5}, {"conversation": "abc"}, {"turns": [5]}, {"turns": [["x"]]},
    {"messages": 5}, {"messages": [5]}, {"prompt": "x", "max_tokens": float("inf")},
    {"prompt": "x", "temperature": float("nan")},
    {"prompt": "x", "temperature": 5}, {"prompt": "x", "max_tokens": 10**30}, {"prompt": ["a"]}, {"prompt": {"a": 1}},
    {"conversations": [{"from": "human", "value": 5}]},
])
def test_issue_row_shapes_are_one_line_errors(row):
    with pytest.raises(UserError) as info:
        _prompt(json.dumps(row))
    assert_one_line(str(info.value))
    assert "p.jsonl line 1" in str(info.value)


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # RecursionError inside json.loads before
    '{"prompt": "x", "id": ' + "[" * 500 + "]" * 500 + "}",
    "[" + "[" * 100_000 + "]" * 100_000 + "]",  # as a JSON list file
    '{"prompt": "x", "max_tokens": ' + "9" * 5000 + "}",  # int longer than Python's 4300-digit limit
])
def test_deep_nesting_and_huge_numbers_are_one_line_errors(text):
    with pytest.raises(UserError) as info:
        _prompt(text)
    assert_one_line(str(info.value))


def test_nesting_depth_is_counted_without_recursion():
    assert nesting_depth(1) == 0
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    assert nesting_depth(nested(MAX_NESTING)) == MAX_NESTING
    deep: list = []
    for _ in range(50_000):  # deeper than any recursion limit
        deep = [deep]
    assert nesting_depth(deep) == MAX_NESTING + 1  # stops counting past the limit


def test_row_files_refuse_non_finite_numbers_and_bad_csv(tmp_path):
    rows = read_rows("t.jsonl", "trace", text='{"a": NaN}\n{"a": 1e400}\n{"a": true}\n{"a": ' + "9" * 400 + "}\n")
    for row in rows:
        with pytest.raises(UserError, match="not a finite number") as info:
            numeric_columns([row], "t.jsonl", "trace", ("a",))
        assert_one_line(str(info.value))
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "x" * 200_000 + ",1\n")  # above csv's field size limit
    with pytest.raises(UserError, match="not valid CSV") as info:
        read_rows(path, "trace", formats=("csv",))
    assert_one_line(str(info.value))


_BASE_ROWS = [
    {"prompt": "Write a haiku.", "max_tokens": 32, "temperature": 0.7, "id": "a", "category": "poem"},
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}], "response": "hello"},
    {"id": "sg1", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    {"question_id": 7, "category": "math", "turns": ["What is 2+2?", "And 3+3?"]},
]
_KEYS = ["prompt", "messages", "turns", "conversations", "conversation", "max_tokens", "temperature", "id",
         "prompt_id", "category", "response", "question_id"]
_TOKENS = ["{", "}", "[", "]", '"', ":", ",", "\n", "NaN", "1e400", "9" * 400, "null", "true", "-1", "\\", "\\ud800",
           "é", " ", '"turns": 5', '"conversations": 5']


def _generated_file(rng: random.Random) -> str:
    rows = []
    for _ in range(rng.randint(1, 4)):
        row = json.loads(json.dumps(rng.choice(_BASE_ROWS)))
        for _ in range(rng.randint(0, 3)):
            target = row
            if rng.random() < 0.3:  # reach into a message or a turn
                inner = row.get("messages") or row.get("conversations")
                if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                    target = inner[0]
            key = rng.choice(_KEYS + list(target))
            target[key] = json_value(rng)
        rows.append(row)
    try:
        lines = [json.dumps(r) for r in rows]
    except (RecursionError, ValueError):
        lines = ['{"prompt": "x"}']
    text = json.dumps(rows) if rng.random() < 0.2 and len(str(rows)) < 10_000 else "\n".join(lines)
    if rng.random() < 0.3:
        text = mutate_text(rng, text, _TOKENS, edits=3)
    return text


def test_generated_prompt_files_parse_or_fail_in_one_line():
    rng = random.Random(13)
    start = time.monotonic()
    parsed = 0
    for i in range(1500):
        text = _generated_file(rng)
        try:
            rows = _prompt(text)
            parsed += 1
            for row in rows:
                assert row.prompt is not None or row.messages is not None
                row.model_dump_json()
        except UserError as exc:
            assert_one_line(str(exc))
            assert str(exc).startswith("p.jsonl")
        except Exception as exc:
            raise AssertionError(f"case {i}: {type(exc).__name__}: {exc}\n{text[:2000]!r}") from exc
    assert 100 < parsed < 1400, parsed  # both outcomes are exercised
    assert time.monotonic() - start < 30
