"""Prompt sets for estimation: the requests of a prompt file, and the token ids a server would see.

Files are read by :mod:`specwise.prompt_files` (plain JSONL, ShareGPT JSON, Spec-Bench JSONL), the same
reader ``specwise bench`` uses for its workloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specwise.errors import UserError
from specwise.prompt_files import ChatMessage, PromptRequest, read_prompt_file

__all__ = ["ChatMessage", "PromptRecord", "load_prompts", "prompt_token_ids", "response_token_ids"]


class PromptRecord(PromptRequest):
    """One request of a prompt set (the shared :class:`~specwise.prompt_files.PromptRequest`)."""


def load_prompts(path: str | Path, limit: int | None = None) -> list[PromptRecord]:
    """Read a prompt file (JSONL, or a JSON list such as ShareGPT); ``limit`` keeps the first N."""
    rows = read_prompt_file(path)
    if limit is not None:
        rows = rows[:limit]
    seen: dict[str, str] = {}
    for row in rows:
        if row.id in seen:
            raise UserError(f"{path} {row.where}: request id {row.id!r} repeats {seen[row.id]}; give every "
                            "request a unique 'id'")
        seen[row.id] = row.where
    return [PromptRecord.model_validate(row.model_dump(exclude={"where", "format"})) for row in rows]


def prompt_token_ids(record: PromptRecord, tokenizer: Any, wrap_plain_as_chat: bool = False) -> list[int]:
    """Token ids the server would see: the request's ``prompt_token_ids`` when given (what a server reported
    it saw), else the chat template for messages, raw text otherwise."""
    if record.prompt_token_ids is not None:
        return [int(i) for i in record.prompt_token_ids]
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


def response_token_ids(record: PromptRecord, tokenizer: Any) -> list[int]:
    """The supplied continuation: ``response_token_ids`` as given (a server's own output ids), else the
    ``response`` text tokenised without special tokens (which need not be the ids the server produced)."""
    if record.response_token_ids is not None:
        return [int(i) for i in record.response_token_ids]
    return [int(i) for i in tokenizer(record.response or "", add_special_tokens=False)["input_ids"]]
