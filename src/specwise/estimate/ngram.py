"""n-gram (prompt lookup) proposals as vLLM makes them, replayed over target continuations.

Which tokens vLLM proposes depends on its version; the differences are data
(``catalog/data/vllm_versions.json``, key ``ngram_proposer``, read through
:func:`specwise.catalog.vllm_versions.ngram_proposer_facts`) turned into :class:`ProposerRules`:

* V1 from 0.10.2 (0.32.0 checked against a real server): ``vllm/v1/spec_decode/ngram_proposer.py``,
  ``_find_longest_matched_ngram_and_propose_tokens``. One KMP pass over the reversed context finds the
  longest n <= ``prompt_lookup_max`` whose last-n-token suffix occurs earlier (n >= ``prompt_lookup_min``
  or no draft); among equally long matches the **earliest** occurrence wins (its ``>=`` comparison), the
  occurrence may overlap the suffix, and up to k tokens that follow it are proposed (fewer where the
  context ends). k is capped at ``max_model_len - len(context)`` by the proposer and the scheduler trims
  one more so the verify step fits (``Scheduler.schedule``).
* V1 before 0.10.2: ``NgramProposer.propose`` / ``_find_subarray_kmp``: n from max down to min, the first
  occurrence in ``context[:len - n]`` (it may not overlap the suffix).
* V0 (``vllm/spec_decode/ngram_worker.py``, ``NGramWorker.sampler_output``): n from min(max, len - 1)
  down, the first match, always k tokens: indices past the context are clamped to its last token.

The engine around the proposer (V1, ``vllm/v1/core/sched/scheduler.py`` and
``vllm/v1/worker/gpu_model_runner.py`` in 0.32.0): the prefill step samples the first token with no
draft; after every later step the runner proposes from prompt + output so far; drafts are **not** trimmed
to ``max_tokens``, and ``Scheduler.update_from_output`` counts the drafted tokens and the accepted prefix
before the output is cut at ``max_tokens`` or a stop token. So the last step of a request drafts (and may
accept) past the text's end, whether the text stopped at EOS or at its budget; a step without a match is a
plain step and counts no draft.

The estimate replays the proposer at every position of the target's continuation. Draft i of a step
starting at t is accepted (vLLM's rejection sampler with a one-hot draft, docs/reference/theory-and-calibration.md §1.5)
with probability ``p_T(proposal_i)`` in the context prompt + y_<t + proposal_<i, and at T = 0 iff it
equals the target's argmax there. Where the proposal agrees with the continuation y those are the
teacher-forced logits; where it diverges, or runs past the text's end, the pipeline runs the target over
the proposal's branch (:func:`specwise.estimate.pipeline._ngram_records`).

Which steps a decoder takes is not spread over the chain's probabilities: a lossless loop's text is a
sample y of the target at T, and with one-hot drafts its counters are a function of y (a draft is
accepted iff the emitted token equals it). So the estimate walks y itself (:func:`matched_prefix`:
next step at t + min(matched, k) + 1), which needs y sampled at T exactly (the CLI's default context
temperatures for ngram), and adds the expected acceptances at the steps it visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from specwise.estimate.acceptance import Truncation


@dataclass(frozen=True)
class ProposerRules:
    """What one vLLM version's n-gram proposer and engine do (a row of the catalog's ``ngram_proposer``)."""

    name: str
    version: str
    overlap_suffix: bool  # may the earlier occurrence overlap the suffix it matches
    pad_to_k: bool  # fewer than k tokens follow the match: pad with the last context token (V0) or propose fewer
    prefill_plain: bool  # the prefill step (first output token) carries no draft
    max_model_len_trim: bool  # drafts trimmed so the verify step stays within max_model_len
    source: str

    @classmethod
    def for_version(cls, version: str | None = None) -> "ProposerRules":
        from specwise.catalog.vllm_versions import ngram_proposer_facts

        row = ngram_proposer_facts(version)
        return cls(name=row["name"], version=row["version"], overlap_suffix=bool(row["overlap_suffix"]),
                   pad_to_k=bool(row["pad_to_k"]), prefill_plain=bool(row["prefill_plain"]),
                   max_model_len_trim=bool(row["max_model_len_trim"]), source=row["source"])


def _cap(k: int, context_len: int, rules: ProposerRules, max_model_len: int | None) -> int:
    """Drafts allowed at a context of ``context_len`` tokens: k, or fewer near ``max_model_len`` (the proposer
    caps at max_model_len - len, the scheduler keeps the verify step's last position inside the limit)."""
    if max_model_len is None or not rules.max_model_len_trim:
        return k
    return max(0, min(k, max_model_len - context_len - 1))


def _follow(ctx: Sequence[int], start: int, cap: int, rules: ProposerRules) -> list[int]:
    follow = list(ctx[start : start + cap])
    if rules.pad_to_k and len(follow) < cap:
        follow += [ctx[-1]] * (cap - len(follow))
    return follow


def _valid(start: int, n: int, context_len: int, rules: ProposerRules) -> bool:
    """An occurrence at ``start`` of the last-n suffix counts: a token follows it, and (rules without overlap)
    it ends before the suffix begins."""
    end = start + n  # first token after the occurrence
    return end <= context_len - 1 and (rules.overlap_suffix or end <= context_len - n)


def propose(context: Sequence[int], k: int, lookup_min: int, lookup_max: int, rules: ProposerRules,
            max_model_len: int | None = None) -> list[int]:
    """The tokens vLLM (``rules``) proposes for ``context``: up to k (exactly k when padded); [] for no match.

    A direct search, used by the validating loop; :func:`replay_proposals` gives the same at every position
    of a continuation incrementally.
    """
    n_ctx = len(context)
    cap = _cap(k, n_ctx, rules, max_model_len)
    if cap <= 0 or n_ctx < max(2, lookup_min):
        return []
    ctx = list(context)
    for n in range(min(lookup_max, n_ctx - 1), lookup_min - 1, -1):
        suffix = ctx[n_ctx - n :]
        for start in range(0, n_ctx - n):  # earliest occurrence first
            if ctx[start : start + n] == suffix:
                if _valid(start, n, n_ctx, rules):
                    return _follow(ctx, start + n, cap, rules)
                break  # the earliest occurrence is the one that ends first: no later one is valid
    return []


def replay_proposals(prompt: Sequence[int], continuation: Sequence[int], k_max: int, lookup_min: int,
                     lookup_max: int, rules: ProposerRules,
                     max_model_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Proposals at every continuation position t (context = prompt + continuation[:t]).

    Same result as calling :func:`propose` at every position (and none at t = 0 when the prefill step is
    plain), in O(length x (max - min + 1)): for each n a dict maps an n-gram to its earliest start among
    n-grams that end before the context's last token. Returns (proposals [n, k_max] int64 padded with -1,
    lengths [n]). Lengths are not capped at the text's end: vLLM does not trim drafts to ``max_tokens`` and
    does not see an EOS coming, so the last steps draft past the text (the pipeline runs the target there).
    """
    n = len(continuation)
    proposals = np.full((n, k_max), -1, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    context = [int(x) for x in prompt]
    sizes = range(lookup_min, lookup_max + 1)
    earliest: dict[int, dict[tuple[int, ...], int]] = {size: {} for size in sizes}

    def index_ngrams_ending_at(end: int) -> None:
        for size in sizes:
            start = end - size + 1
            if start >= 0:
                earliest[size].setdefault(tuple(context[start : end + 1]), start)

    # n-grams ending at or before len(context) - 2 are candidates for the first lookup
    for end in range(len(context) - 1):
        index_ngrams_ending_at(end)
    for t in range(n):
        length = len(context)
        cap = _cap(k_max, length, rules, max_model_len)
        if cap > 0 and length >= max(2, lookup_min) and not (t == 0 and rules.prefill_plain):
            for size in range(min(lookup_max, length - 1), lookup_min - 1, -1):
                start = earliest[size].get(tuple(context[length - size :]))
                if start is not None and _valid(start, size, length, rules):
                    follow = _follow(context, start + size, cap, rules)
                    proposals[t, : len(follow)] = follow
                    lengths[t] = len(follow)
                    break
        if length >= 1:
            index_ngrams_ending_at(length - 1)
        context.append(int(continuation[t]))
    return proposals, lengths


def matched_prefix(proposals: np.ndarray, lengths: np.ndarray, continuation: Sequence[int]) -> np.ndarray:
    """``matched[t]``: how many leading proposal tokens of the step starting at t equal the continuation.

    A lossless loop's text is distributed as the target's own sample y, and a one-hot draft is accepted
    exactly when the emitted token equals it (a rejection resamples from p with the draft token removed).
    So a real decode whose text is y accepts exactly ``min(matched[t], k)`` drafts at a step starting at t
    and starts its next step at ``t + min(matched[t], k) + 1``: this is the walk the estimate follows.
    """
    cont = np.asarray(continuation, dtype=np.int64)
    n, k_max = proposals.shape
    matched = np.zeros(n, dtype=np.int64)
    for t in np.nonzero(lengths)[0]:
        m = 0
        while m < lengths[t] and t + m < n and proposals[t, m] == cont[t + m]:
            m += 1
        matched[t] = m
    return matched


def ngram_chain(target_logits: Any, proposals: np.ndarray, lengths: np.ndarray,
                temperatures: Sequence[float], truncation: Truncation | None = None) -> np.ndarray:
    """``chain[T, t, i]`` = acceptance of proposal i of the step starting at t (shape [nT, n, k_max]).

    Uses :func:`specwise.estimate.acceptance.proposal_acceptance` at position t + i for every proposed
    token, computed for all (t, i) pairs in one gather; ``truncation`` (an
    :class:`specwise.estimate.acceptance.Truncation`) is the request's top-k/top-p on the target side.
    Proposed tokens beyond the continuation's last logits row (drafts past the text's end) are left at 0
    here; their acceptances need the target run over the proposal's own branch
    (:func:`specwise.estimate.pipeline._ngram_records`).
    """
    from specwise.estimate.acceptance import NO_TRUNCATION, proposal_acceptance

    n, k_max = proposals.shape
    chain = np.zeros((len(temperatures), n, k_max))
    ts, iis = np.nonzero(np.arange(k_max)[None, :] < lengths[:, None])
    inside = ts + iis < target_logits.shape[0]
    ts, iis = ts[inside], iis[inside]
    if ts.size == 0:
        return chain
    positions = ts + iis
    tokens = proposals[ts, iis]
    if isinstance(target_logits, np.ndarray):
        logits = target_logits[positions]
    else:
        import torch

        logits = target_logits[torch.as_tensor(positions, device=target_logits.device)]
    acc = proposal_acceptance(logits, tokens, temperatures, truncation or NO_TRUNCATION)  # [nT, pairs]
    chain[:, ts, iis] = acc
    return chain
