"""n-gram (prompt lookup) proposals, replayed over target continuations.

The proposer follows vLLM V1's ``method: "ngram"`` (docs/reference/vllm-speculative-decoding.md §1.4, key
``prompt_lookup_min/max``, both default 5): find the longest n in [min, max] such that the last n tokens
of prompt + generated-so-far occur earlier in that context, take the most recent such occurrence, and
propose up to k tokens that followed it (fewer when the context ends first). No match means no draft:
vLLM schedules a plain step and counts no draft for it (§ metrics: steps that propose nothing are not
counted in ``num_drafts``).

The estimate replays that proposer at every position of the target's continuation. Draft i of a step
starting at t is accepted (vLLM's rejection sampler with a one-hot draft, docs/reference/theory-and-calibration.md §1.5)
with probability ``p_T(proposal_i)`` in the context prompt + y_<t + proposal_<i, and at T = 0 iff it
equals the target's argmax there. Where the proposal agrees with the continuation y those are the
teacher-forced logits; where it diverges the pipeline runs the target over the proposal's branch
(:func:`specwise.estimate.pipeline._ngram_records`), since a copy proposal conditioned on sampled text
that left the copy would understate acceptance at T > 0.

Which steps a decoder takes is not spread over the chain's probabilities: a lossless loop's text is a
sample y of the target at T, and with one-hot drafts its counters are a function of y (a draft is
accepted iff the emitted token equals it). So the estimate walks y itself (:func:`matched_prefix`:
next step at t + min(matched, k) + 1), which needs y sampled at T exactly (the CLI's default context
temperatures for ngram), and adds the expected acceptances at the steps it visits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from specwise.estimate.acceptance import Truncation


def propose(context: Sequence[int], k: int, lookup_min: int, lookup_max: int) -> list[int]:
    """Up to k tokens proposed by prompt lookup for ``context`` (empty list: no match)."""
    n_ctx = len(context)
    if k <= 0 or n_ctx < 2:
        return []
    ctx = list(context)
    for n in range(min(lookup_max, n_ctx - 1), lookup_min - 1, -1):
        suffix = ctx[n_ctx - n :]
        # most recent earlier occurrence: its start s satisfies s + n <= n_ctx - 1, so at least one
        # token follows it
        for start in range(n_ctx - n - 1, -1, -1):
            if ctx[start : start + n] == suffix:
                follow = ctx[start + n : start + n + k]
                return follow
    return []


def replay_proposals(prompt: Sequence[int], continuation: Sequence[int], k_max: int, lookup_min: int,
                     lookup_max: int, budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Proposals at every continuation position t (context = prompt + continuation[:t]).

    Same result as calling :func:`propose` at every position, in O(length x (max - min + 1)): for each n a
    dict maps an n-gram to its most recent start among n-grams that end before the context's last token
    (so the suffix never matches itself and a follower always exists). Returns (proposals [n, k_max] int64
    padded with -1, lengths [n]); lengths are capped at ``budget - 1 - t``, the loop's own cap
    (``min(k, max_new_tokens - generated - 1)``). ``budget`` is the request's max_new_tokens; it defaults
    to the continuation's length, right when the text stopped at the budget. A text that stopped at EOS
    before its budget must pass it: the decoder does not know the end is near and keeps drafting k tokens
    (rejected past EOS), and capping at the text's length instead drops those drafts from the estimate and
    overstates accepted/drafted.
    """
    n = len(continuation)
    budget = n if budget is None else max(int(budget), n)
    proposals = np.full((n, k_max), -1, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    context = [int(x) for x in prompt]
    sizes = range(lookup_min, lookup_max + 1)
    latest: dict[int, dict[tuple[int, ...], int]] = {size: {} for size in sizes}

    def index_ngrams_ending_at(end: int) -> None:
        for size in sizes:
            start = end - size + 1
            if start >= 0:
                latest[size][tuple(context[start : end + 1])] = start

    # n-grams ending at or before len(context) - 2 are candidates for the first lookup
    for end in range(len(context) - 1):
        index_ngrams_ending_at(end)
    for t in range(n):
        cap = min(k_max, budget - 1 - t)
        length = len(context)
        if cap > 0 and length >= 2:
            for size in range(min(lookup_max, length - 1), lookup_min - 1, -1):
                start = latest[size].get(tuple(context[length - size :]))
                if start is not None:
                    follow = context[start + size : start + size + cap]
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
    Proposed tokens beyond the continuation's last logits row (drafts past an EOS) are left at 0 here;
    their acceptances need the target run over the proposal's own branch
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
