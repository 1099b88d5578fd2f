"""Workloads: prompt suites by task category, loaders for common dataset formats, and request sampling.

A :class:`Workload` is a pool of prompts with a category mix and a temperature distribution. Both
homogeneous (one category) and mixed workloads are first-class, because speculation's benefit differs
by category (summarisation/RAG copy from the prompt; chat at high temperature does not) and an
aggregate hides the requests where it is net-negative.

Built-in suites (package data ``bench/suites/*.jsonl``, written for specwise) and loaders:

* prompt files read by :mod:`specwise.prompt_files` (the reader ``estimate`` uses too): plain JSONL
  ``{"prompt"|"messages", "max_tokens"?, "temperature"?, "category"?}``, ShareGPT JSON (first human turn,
  as ``vllm bench serve --dataset-name sharegpt``) and Spec-Bench JSONL (first of ``turns``).
"""

from __future__ import annotations

import math

from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from specwise.errors import UserError
from specwise.prompt_files import PromptRow, read_prompt_file
from specwise.rowfiles import row_error
from specwise.schemas.base import SpecwiseModel

__all__ = [
    "BUILTIN_CATEGORIES",
    "Message",
    "Prompt",
    "RequestSpec",
    "Workload",
    "build_workload",
    "load_jsonl",
    "load_sharegpt",
    "load_spec_bench",
    "load_suite",
    "load_workload_file",
    "random_prompts",
]

BUILTIN_CATEGORIES = ("chat", "code", "summarization", "json_extraction", "rag_qa")
DEFAULT_MAX_TOKENS = 256


class Message(SpecwiseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Prompt(SpecwiseModel):
    """One prompt of a workload pool."""

    prompt_id: str
    category: str
    messages: list[Message] = Field(default_factory=list, description="chat form (used by /v1/chat/completions)")
    text: str | None = Field(None, description="completion form (used by /v1/completions)")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    source: str = "builtin"

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.text or ""}]

    def as_text(self) -> str:
        if self.text is not None:
            return self.text
        return "\n\n".join(m.content for m in self.messages if m.role != "assistant")


class RequestSpec(SpecwiseModel):
    """One request of a cell: the same list (same order, same send times) goes to both arms."""

    index: int
    request_id: str
    prompt: Prompt
    category: str
    max_tokens: int
    temperature: float
    scheduled_s: float = 0.0
    seed: int | None = Field(None, description="per-request sampling seed sent to the server")


class Workload(SpecwiseModel):
    """A prompt pool with a category mix and a temperature distribution."""

    name: str
    prompts: list[Prompt]
    category_weights: dict[str, float] = Field(
        default_factory=dict, description="relative share per category; empty = as present in the pool"
    )
    temperatures: dict[float, float] = Field(
        default_factory=lambda: {0.0: 1.0},
        description="temperature -> weight, used when a cell does not fix the temperature",
    )
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, description="for prompts that do not set their own")
    max_tokens_override: int | None = Field(None, description="forces every request's max_tokens")
    synthetic: bool = Field(False, description="random/synthetic prompts: acceptance is meaningless")
    ignore_eos: bool = Field(False, description="requests ask the server to ignore EOS: acceptance is distorted")

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.prompts})

    def sample(self, n: int, seed: int, temperature: float | None = None) -> list[RequestSpec]:
        """``n`` requests drawn deterministically from ``seed``.

        Categories are drawn by weight, then prompts within a category cycle through a seeded
        permutation (so a suite is covered before any prompt repeats). ``temperature`` fixes every
        request's temperature; None draws from :attr:`temperatures` (prompt-level temperatures win).
        """
        if not self.prompts:
            raise UserError(f"workload {self.name!r} has no prompts")
        rng = np.random.default_rng(seed)
        by_cat: dict[str, list[Prompt]] = {}
        for p in self.prompts:
            by_cat.setdefault(p.category, []).append(p)
        cats = sorted(by_cat)
        weights = np.array([self.category_weights.get(c, 0.0 if self.category_weights else len(by_cat[c]))
                            for c in cats], dtype=float)
        if weights.sum() <= 0:
            raise UserError(f"workload {self.name!r}: category weights select no prompts")
        weights /= weights.sum()
        orders = {c: list(rng.permutation(len(by_cat[c]))) for c in cats}
        cursor = dict.fromkeys(cats, 0)
        temps = sorted(self.temperatures)
        t_weights = np.array([self.temperatures[t] for t in temps], dtype=float)
        t_weights /= t_weights.sum()
        out: list[RequestSpec] = []
        for i in range(n):
            cat = cats[int(rng.choice(len(cats), p=weights))]
            prompt = by_cat[cat][orders[cat][cursor[cat] % len(by_cat[cat])]]
            cursor[cat] += 1
            drawn_t = float(temps[int(rng.choice(len(temps), p=t_weights))])
            if temperature is not None:
                temp = temperature
            elif prompt.temperature is not None:
                temp = prompt.temperature
            else:
                temp = drawn_t
            out.append(RequestSpec(
                index=i, request_id=f"r{i:05d}", prompt=prompt, category=cat,
                max_tokens=self.max_tokens_override or prompt.max_tokens or self.max_tokens, temperature=temp,
                seed=int(rng.integers(0, 2**31 - 1)),
            ))
        return out


def _to_prompt(row: PromptRow, source: str) -> Prompt:
    """A shared :class:`PromptRow` as a workload :class:`Prompt` (plain prompts serve both endpoints)."""
    try:
        messages = [Message(**m.model_dump()) for m in row.messages or []]
    except ValueError as exc:
        raise row_error(source, row.where, f"bad 'messages' ({str(exc).splitlines()[-1].strip()})",
                        "roles are system, user or assistant") from None
    if row.prompt is not None and row.messages is None:
        messages = [Message(role="user", content=row.prompt)]
    origin = {"sharegpt": "sharegpt", "spec_bench": "spec_bench"}.get(row.format, source)
    return Prompt(prompt_id=row.id, category=row.category, messages=messages,
                  text=row.prompt if row.messages is None else None, max_tokens=row.max_tokens,
                  temperature=row.temperature, source=origin)


def load_workload_file(path: Path | str, default_category: str = "custom") -> list[Prompt]:
    """A prompt file of any supported format (detected per row: plain JSONL, ShareGPT, Spec-Bench)."""
    return [_to_prompt(r, str(path)) for r in read_prompt_file(path, default_category)]


# One reader serves every format; these names say which file a caller expects.
load_jsonl = load_workload_file
load_sharegpt = load_workload_file
load_spec_bench = load_workload_file


def load_suite(category: str) -> list[Prompt]:
    """A built-in suite (``chat``, ``code``, ``summarization``, ``json_extraction``, ``rag_qa``)."""
    if category not in BUILTIN_CATEGORIES:
        raise UserError(f"unknown suite {category!r}; built-in suites: {', '.join(BUILTIN_CATEGORIES)}")
    text = resources.files("specwise.bench").joinpath("suites", f"{category}.jsonl").read_text(encoding="utf-8")
    source = f"builtin:{category}"
    return [_to_prompt(r, source) for r in read_prompt_file(source, category, text=text)]


def random_prompts(n: int = 100, words: int = 64, seed: int = 0) -> list[Prompt]:
    """Synthetic prompts of random words (like ``vllm bench serve --dataset-name random``): fine for load and
    capacity, meaningless for acceptance (nothing to predict), so the workload is marked ``synthetic``."""
    rng = np.random.default_rng(seed)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "pu", "ri", "so", "tu") for b in ("b", "d", "g", "k", "m", "n",
                                                                                       "p", "t")]
    return [Prompt(prompt_id=f"random-{i:03d}", category="random", source="synthetic",
                   messages=[Message(role="user", content=" ".join(rng.choice(vocab, size=words)))])
            for i in range(n)]


def build_workload(
    spec: str,
    temperatures: dict[float, float] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Workload:
    """``chat`` / ``code`` / … (one built-in suite), ``mixed`` (all five, equal shares), ``random`` (synthetic),
    ``chat:0.7,code:0.3`` (weighted built-in mix) or a path to a ShareGPT/Spec-Bench/JSONL file."""
    temps = temperatures or {0.0: 1.0}
    if spec == "random":
        return Workload(name="random", prompts=random_prompts(), temperatures=temps, max_tokens=max_tokens,
                        synthetic=True)
    if Path(spec).suffix in (".json", ".jsonl") or Path(spec).exists():
        prompts = load_workload_file(spec)
        return Workload(name=Path(spec).name, prompts=prompts, temperatures=temps, max_tokens=max_tokens)
    if spec == "mixed":
        weights = dict.fromkeys(BUILTIN_CATEGORIES, 1.0)
    elif ":" in spec or "," in spec:
        weights = {}
        for part in spec.split(","):
            name, _, w = part.partition(":")
            try:
                weight = float(w) if w else 1.0
            except ValueError as exc:
                raise UserError(f"workload mix {spec!r}: weight {w!r} is not a number") from exc
            if not (math.isfinite(weight) and weight > 0):
                raise UserError(f"workload mix {spec!r}: weight {w!r} must be a finite number > 0")
            weights[name.strip()] = weight
    else:
        weights = {spec: 1.0}
    prompts = [p for cat in weights for p in load_suite(cat)]
    return Workload(name=spec, prompts=prompts, category_weights=weights, temperatures=temps, max_tokens=max_tokens)
