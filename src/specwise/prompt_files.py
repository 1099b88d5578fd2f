"""Prompt files, read once for every stage: plain JSONL, ShareGPT JSON and Spec-Bench JSONL.

``bench`` builds its workload pools and ``estimate`` its prompt sets from the :class:`PromptRow`s read here,
so both accept the same files and report a bad row the same way (``FILE line N: PROBLEM; WHAT TO DO``).
The format is detected per row, so one file may mix them:

* plain, one object per line: ``prompt`` (raw completion text) or ``messages`` (OpenAI chat list), optional
  ``id`` (or ``prompt_id``), ``category``, ``max_tokens``, ``temperature`` and ``response`` (the text the
  model produced in production; estimate teacher-forces it instead of generating), and optionally
  ``prompt_token_ids`` / ``response_token_ids``: the exact ids a server saw and produced (vLLM's
  ``return_token_ids``), which estimate uses as given;
* ShareGPT (a JSON list, or JSONL): ``{"id", "conversations": [{"from": "human"|"gpt", "value"}]}``; the
  first human turn becomes a user message (as ``vllm bench serve --dataset-name sharegpt`` does) and the gpt
  turn after it the response; conversations without a human turn are skipped;
* Spec-Bench JSONL: ``{"question_id", "category", "turns": [...]}``; the first turn becomes a user message;
  rows with no turns are skipped.

Rows without an ``id`` get ``<category>-<row index>``; without a category, ``chat`` (ShareGPT),
``spec_bench`` (Spec-Bench) or the caller's default (plain rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import Field, ValidationError

from specwise.errors import UserError
from specwise.rowfiles import Row, read_rows, require_object, row_error
from specwise.schemas.base import SpecwiseModel

PromptFormat = Literal["plain", "sharegpt", "spec_bench"]
FORMAT_CATEGORY = {"sharegpt": "chat", "spec_bench": "spec_bench"}
_FIX = ("give each request 'prompt' (text) or 'messages' (chat list), or use Spec-Bench 'turns' or ShareGPT "
        "'conversations'")


class ChatMessage(SpecwiseModel):
    role: str
    content: str


class PromptRequest(SpecwiseModel):
    """One request of a prompt file, in the common form (see the module docstring)."""

    id: str
    category: str = "default"
    prompt: str | None = Field(None, description="raw completion text (no chat template)")
    messages: list[ChatMessage] | None = Field(None, description="chat messages (chat template applied)")
    # 2^24 tokens: above any served context window (vLLM's largest are ~10M); a larger value is a typo.
    max_tokens: int | None = Field(None, ge=1, le=1 << 24)
    # [0, 2]: the OpenAI API range (see schemas.limits.Temperature)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    response: str | None = Field(None, description="observed response; estimate teacher-forces it")
    prompt_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="the exact prompt token ids a server saw (its `return_token_ids` answer); estimate "
        "uses them instead of tokenising prompt/messages")
    response_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="the exact output token ids a server produced; estimate replays them instead of "
        "re-tokenising `response`, so its n-gram replay runs on the server's own tokens")


class PromptRow(PromptRequest):
    """A :class:`PromptRequest` with where it stands in its file and the format it was written in."""

    where: str = Field(description="position in the file, e.g. 'line 3' (JSONL) or 'item 3' (JSON list)")
    format: PromptFormat


def _sharegpt(row: dict[str, Any], source: str, where: str) -> dict[str, Any] | None:
    key = "conversations" if "conversations" in row else "conversation"
    turns = row.get(key) or []
    if not isinstance(turns, list):
        raise row_error(source, where, f"'{key}' is a {type(turns).__name__}, not a list",
                        "write ShareGPT turns as [{\"from\": \"human\", \"value\": \"...\"}, ...]")
    for i, turn in enumerate(turns):
        if isinstance(turn, dict) and turn.get("from") in ("human", "user"):
            nxt = turns[i + 1] if i + 1 < len(turns) and isinstance(turns[i + 1], dict) else {}
            response = nxt.get("value") if nxt.get("from") in ("gpt", "assistant", "chatgpt") else None
            return {"id": row.get("id"), "category": row.get("category"), "response": response,
                    "messages": [{"role": "user", "content": turn.get("value", "")}]}
    return None


def parse_prompt_row(data: Any, where: str, index: int, source: str,
                     default_category: str = "default") -> PromptRow | None:
    """One decoded row as a :class:`PromptRow`; None for a row with nothing to prompt (skipped)."""
    row = require_object(Row(where, data), source, "request")
    fmt: PromptFormat
    if "conversations" in row or "conversation" in row:
        fmt, fields = "sharegpt", _sharegpt(row, source, where)
    elif "turns" in row:
        turns = row.get("turns") or []
        if not isinstance(turns, list) or (turns and not isinstance(turns[0], str)):
            shown = type(turns[0] if isinstance(turns, list) else turns).__name__
            raise row_error(source, where, f"'turns' holds a {shown}, not a list of strings",
                            "write Spec-Bench turns as [\"first user turn\", ...]")
        fmt, fields = "spec_bench", ({"id": row.get("question_id"), "category": row.get("category"),
                                      "messages": [{"role": "user", "content": turns[0]}]} if turns else None)
    elif "prompt" in row or "messages" in row:
        fmt = "plain"
        fields = {k: v for k, v in row.items() if k in ("prompt", "messages", "max_tokens", "temperature",
                                                        "category", "response", "prompt_token_ids",
                                                        "response_token_ids")}
        fields["id"] = row.get("id", row.get("prompt_id"))
        if isinstance(fields.get("prompt"), (int, float)) and not isinstance(fields["prompt"], bool):
            fields["prompt"] = str(fields["prompt"])  # a bare number is still text to complete
    else:
        raise row_error(source, where, "none of 'prompt', 'messages', 'turns' or 'conversations'", _FIX)
    if fields is None:
        return None
    category = str(fields.get("category") or FORMAT_CATEGORY.get(fmt, default_category))
    ident = fields.get("id")
    fields.update(category=category, id=f"{category}-{index:04d}" if ident is None else str(ident))
    try:
        return PromptRow(where=where, format=fmt, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise row_error(source, where, f"'{field}' {err['msg'].lower()}",
                        "fix that field (max_tokens >= 1, temperature in [0, 2], messages as "
                        "[{\"role\": ..., \"content\": ...}], token ids as lists of integers >= 0)") from None


def parse_prompt_rows(rows: Iterable[Row], source: str, default_category: str = "default") -> list[PromptRow]:
    """:func:`parse_prompt_row` over decoded rows, skipping those with nothing to prompt."""
    out = []
    for index, row in enumerate(rows):
        parsed = parse_prompt_row(row.data, row.where, index, source, default_category)
        if parsed is not None:
            out.append(parsed)
    return out


def read_prompt_file(path: str | Path, default_category: str = "default", text: str | None = None,
                     source: str | None = None) -> list[PromptRow]:
    """Every request of a prompt file (JSONL or a JSON list; ``text`` instead of reading ``path``); a file
    with none is an error."""
    src = source or str(path)
    rows = read_rows(path, "prompt", formats=("jsonl", "json"), text=text, source=src)
    parsed = parse_prompt_rows(rows, src, default_category)
    if not parsed:
        raise UserError(f"{src}: no prompts found; each request needs 'prompt' or 'messages' (or Spec-Bench "
                        "'turns', ShareGPT 'conversations' with a human turn)")
    return parsed
