"""Prompt sets for estimation: plain JSONL, ShareGPT JSON and Spec-Bench JSONL.

Formats (detected per file):

* plain JSONL, one object per line: ``prompt`` (raw completion text) or ``messages`` (OpenAI chat list),
  optional ``max_tokens``, ``temperature``, ``category``, ``id`` and ``response`` (the text the model
  actually produced in production; when present the estimate teacher-forces it instead of generating);
* ShareGPT JSON: a list of ``{"id", "conversations": [{"from": "human"|"gpt", "value"}]}``; the first human
  turn becomes a user message and the gpt turn after it the response;
* Spec-Bench JSONL: ``{"question_id", "category", "turns": [...]}``; the first turn becomes a user message.

:func:`parse_prompt_rows` does the per-row work and is meant to be reused by other workload loaders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import Field

from specwise.errors import UserError
from specwise.schemas.base import SpecwiseModel


class ChatMessage(SpecwiseModel):
    role: str
    content: str


class PromptRecord(SpecwiseModel):
    """One request of a prompt set."""

    id: str
    category: str = "default"
    prompt: str | None = Field(None, description="raw completion text (no chat template)")
    messages: list[ChatMessage] | None = Field(None, description="chat messages (chat template applied)")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0)
    response: str | None = Field(None, description="observed response; teacher-forced instead of generating")


def _sharegpt_row(row: dict[str, Any], index: int) -> dict[str, Any] | None:
    turns = row.get("conversations") or row.get("conversation") or []
    for i, turn in enumerate(turns):
        if turn.get("from") in ("human", "user"):
            response = None
            if i + 1 < len(turns) and turns[i + 1].get("from") in ("gpt", "assistant", "chatgpt"):
                response = turns[i + 1].get("value")
            return {
                "id": str(row.get("id", index)),
                "category": row.get("category", "sharegpt"),
                "messages": [{"role": "user", "content": turn.get("value", "")}],
                "response": response,
            }
    return None


def parse_prompt_rows(rows: Iterable[dict[str, Any]], source: str = "prompts") -> list[PromptRecord]:
    """Turn decoded JSON rows of any supported format into :class:`PromptRecord`s.

    Rows without a usable prompt (e.g. a ShareGPT conversation with no human turn) are skipped; a row that
    is malformed raises :class:`UserError` naming the row.
    """
    records: list[PromptRecord] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{source}: row {index + 1} is not a JSON object")
        if "conversations" in row or "conversation" in row:
            converted = _sharegpt_row(row, index)
            if converted is None:
                continue
            row = converted
        elif "turns" in row:  # Spec-Bench
            turns = row.get("turns") or []
            if not turns:
                continue
            row = {
                "id": str(row.get("question_id", index)),
                "category": row.get("category", "default"),
                "messages": [{"role": "user", "content": str(turns[0])}],
            }
        elif "prompt" not in row and "messages" not in row:
            raise UserError(
                f"{source}: row {index + 1} has none of 'prompt', 'messages', 'turns' (Spec-Bench) or "
                "'conversations' (ShareGPT)"
            )
        data = dict(row)
        data.setdefault("id", str(index))
        data["id"] = str(data["id"])
        if data.get("category") is None:
            data["category"] = "default"
        try:
            records.append(PromptRecord.model_validate(data))
        except Exception as exc:  # pydantic ValidationError: say which row
            raise UserError(f"{source}: row {index + 1} is invalid: {str(exc).splitlines()[-1].strip()}") from exc
    return records


def load_prompts(path: str | Path, limit: int | None = None) -> list[PromptRecord]:
    """Read a prompt file (JSONL, or a JSON list such as ShareGPT); ``limit`` keeps the first N."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    rows: list[Any]
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
    records = parse_prompt_rows(rows, source=str(path))
    if limit is not None:
        records = records[:limit]
    if not records:
        raise UserError(f"{path}: no prompts found")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: request ids must be unique (duplicate ids found)")
    return records


def prompt_token_ids(record: PromptRecord, tokenizer: Any, wrap_plain_as_chat: bool = False) -> list[int]:
    """Token ids the server would see: chat template for messages, raw text otherwise."""
    messages = record.messages
    if messages is None and wrap_plain_as_chat:
        messages = [ChatMessage(role="user", content=record.prompt or "")]
    if messages is not None:
        if not getattr(tokenizer, "chat_template", None):
            raise UserError(
                f"request {record.id} has chat messages but the tokenizer has no chat template; give a "
                "'prompt' instead"
            )
        ids = tokenizer.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers >= 5 may return a BatchEncoding
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return [int(i) for i in tokenizer(record.prompt or "", add_special_tokens=True)["input_ids"]]
