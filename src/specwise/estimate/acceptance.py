"""Acceptance math: from target and draft logits over teacher-forced sequences to vLLM's metrics.

Per position (docs/reference/theory-and-calibration.md §1.1, §1.5), for every temperature T from one set of logits:

* lossless speculative sampling (draft probabilities used, vLLM ``draft_sample_method=probabilistic``):
  ``beta_T = sum_x min(p_T(x), q_T(x)) = 1 - TV(p_T, q_T)``;
* argmax draft (vLLM V1 default ``draft_sample_method=greedy``, n-gram, EAGLE on the V1 runner): the draft
  proposes ``x^ = argmax q`` and the rejection sampler treats q as one-hot, so ``beta_T = p_T(x^)``;
* T = 0: both reduce to greedy agreement ``1[argmax q = argmax p]``.

``p_T = softmax(z / T)``, truncated by the request's top-k / top-p on the **target side only**
(:class:`Truncation`, the way vLLM's V1 rejection sampler does it; facts and sources there).

From per-position acceptances to per-step quantities (the non-i.i.d. chain form of §1.6): a verify step
that starts at continuation position t with k drafts accepts draft i (0-based) only if drafts 0..i were
all accepted, with probability ``prod_{j<=i} beta_{t+j}`` evaluated **along the target's continuation**
(the approximation: after an accepted draft the context is taken to be the target's own token). Averaging
``1 + sum_{i<k} prod_{j<=i} beta_{t+j}`` uniformly over start positions t would weight every position
equally; a real decoder does not visit every start position (after a long accepted run it skips ahead),
and vLLM's counters are sums over the steps it did take. :func:`replay_steps` therefore computes, by
dynamic programming over the continuation, the probability that a step starts at each position, and
returns expected sums of exactly the counters vLLM exposes (steps, drafts, draft tokens, accepted tokens,
accepted per position). With stationary acceptance both weightings agree; with bursty acceptance (n-gram)
the step weighting is the one that matches ``accepted / drafted`` measured on a server.

Everything below the per-position functions is plain numpy (no torch), so it is unit-testable anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

# ------------------------------------------------------------------------------------------------
# Per-position acceptance from logits (numpy or torch arrays, shape [positions, vocab])
# ------------------------------------------------------------------------------------------------


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass(frozen=True)
class Truncation:
    """A request's top-k / top-p, applied as vLLM applies them when verifying drafts.

    Facts relied on (vLLM V1, read at vllm-project/vllm main, Nov 2026):

    * Target side: ``vllm/v1/sample/rejection_sampler.py`` ``RejectionSampler.forward`` ->
      ``apply_sampling_constraints`` divides the target logits by the request temperature, then calls
      ``apply_top_k_top_p`` (``vllm/v1/sample/ops/topk_topp_sampler.py``), then softmaxes. Those truncated,
      renormalised probabilities p are used for the accept test (``rejection_random_sample_kernel``:
      accept iff ``p(x) / q(x) >= u``), for the recovered token (``sample_recovered_tokens_kernel``:
      ``max(p - q, 0)``, or p with the draft token masked out when there are no draft probabilities), and
      the bonus token comes from the ordinary sampler with the same top-k/top-p. The V2 runner
      (``vllm/v1/worker/gpu/spec_decode/rejection_sampler.py``) likewise verifies against
      ``sampler.apply_sampling_params(logits)``.
    * ``apply_top_k_top_p``: top-k keeps every logit >= the k-th largest (ties kept); top-p then works on
      the top-k-renormalised distribution: ascending sort, cumulative sum, drop tokens whose cumulative
      mass is <= 1 - top_p, never the most likely one. Equivalently a token survives iff the mass of the
      tokens ranked above it is < top_p. ``top_k`` 0 / -1 and ``top_p`` 1 mean off (vLLM ``SamplingParams``).
    * Draft side, ``draft_sample_method=greedy`` (default; draft_model, EAGLE/MTP and n-gram alike): the
      proposal is the argmax of the draft's raw logits (``llm_base_proposer._greedy_sample``); n-gram
      proposes copied tokens and passes ``draft_probs=None``. Either way q is one-hot, so acceptance is
      ``p_trunc(proposal)``: a proposal outside the target's top-k/top-p set is always rejected.
    * Draft side, ``draft_sample_method=probabilistic``: ``compute_probs_and_sample_next_token``
      (``vllm/v1/spec_decode/llm_base_proposer.py``) divides the draft logits by the temperature and
      softmaxes; its comment: "we ignore most of the sampling parameters in generating the draft tokens.
      We only use the temperature." So q is **not** truncated and the acceptance is
      ``sum_x min(p_trunc(x), q_T(x))``; draft mass outside the target's set is always rejected.
    * T = 0 requests take the greedy path (argmax match) where truncation changes nothing.
    """

    top_k: int = 0
    top_p: float = 1.0

    @property
    def active(self) -> bool:
        return self.top_k > 0 or self.top_p < 1.0


NO_TRUNCATION = Truncation()


def truncate_scaled_logits(scaled: Any, truncation: Truncation) -> Any:
    """Temperature-scaled logits with the tokens vLLM's ``apply_top_k_top_p`` drops set to -inf."""
    if _is_torch(scaled):
        import torch

        if 0 < truncation.top_k < scaled.shape[-1]:
            kth = scaled.topk(truncation.top_k, dim=-1).values[..., -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        if truncation.top_p < 1.0:
            probs = scaled.softmax(dim=-1)
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            mass_above = sorted_probs.cumsum(dim=-1) - sorted_probs
            drop_sorted = mass_above >= truncation.top_p
            drop_sorted[..., 0] = False
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            scaled = scaled.masked_fill(drop, float("-inf"))
        return scaled
    scaled = np.array(scaled, dtype=np.float64)
    if 0 < truncation.top_k < scaled.shape[-1]:
        kth = -np.sort(-scaled, axis=-1)[..., truncation.top_k - 1 : truncation.top_k]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    if truncation.top_p < 1.0:
        probs = _softmax_np(scaled)
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        drop_sorted = (np.cumsum(sorted_probs, axis=-1) - sorted_probs) >= truncation.top_p
        drop_sorted[..., 0] = False
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        scaled = np.where(drop, -np.inf, scaled)
    return scaled


def _softmax_np(scaled: np.ndarray) -> np.ndarray:
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _softmax(z: Any, temperature: float, truncation: Truncation = NO_TRUNCATION) -> Any:
    """``softmax(z / T)``, truncated and renormalised by ``truncation`` when it is active."""
    scaled = z.float() / temperature if _is_torch(z) else np.asarray(z, dtype=np.float64) / temperature
    if truncation.active:
        scaled = truncate_scaled_logits(scaled, truncation)
    return scaled.softmax(dim=-1) if _is_torch(scaled) else _softmax_np(scaled)


def truncated_probs(logits: Any, temperature: float, truncation: Truncation = NO_TRUNCATION) -> Any:
    """The distribution vLLM verifies against at ``temperature`` > 0 (see :class:`Truncation`)."""
    return _softmax(logits, temperature, truncation)


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _argmax(z: Any) -> Any:
    return z.argmax(dim=-1) if _is_torch(z) else np.asarray(z).argmax(axis=-1)


def lossless_acceptance(target_logits: Any, draft_logits: Any, temperatures: Sequence[float],
                        truncation: Truncation = NO_TRUNCATION) -> np.ndarray:
    """``beta_T[t] = sum_x min(p_T, q_T)`` per position; greedy agreement at T = 0. Shape [nT, n].

    p_T is truncated by ``truncation``, q_T is not (vLLM's probabilistic draft uses the temperature only).
    """
    out = []
    p_arg = _argmax(target_logits)
    q_arg = _argmax(draft_logits)
    for temperature in temperatures:
        if temperature <= 0:
            agree = p_arg == q_arg
            out.append(_to_numpy(agree).astype(np.float64))
            continue
        p = _softmax(target_logits, temperature, truncation)
        q = _softmax(draft_logits, temperature)
        if _is_torch(p):
            beta = _to_numpy(p.minimum(q).sum(dim=-1))
        else:
            beta = np.minimum(p, q).sum(axis=-1)
        out.append(np.clip(beta.astype(np.float64), 0.0, 1.0))
    return np.stack(out) if out else np.zeros((0, 0))


def proposal_acceptance(target_logits: Any, proposed: Any, temperatures: Sequence[float],
                        truncation: Truncation = NO_TRUNCATION) -> np.ndarray:
    """Acceptance of a deterministic (argmax / n-gram) proposal under vLLM's rejection sampler.

    ``proposed[t]`` is the token proposed for position t. Returns ``p_T(proposed[t])`` per position (p_T
    truncated by ``truncation``: 0 for a token outside the target's top-k/top-p set), and
    ``1[proposed[t] = argmax p[t]]`` at T = 0. Shape [nT, n].
    """
    out = []
    p_arg = _argmax(target_logits)
    if _is_torch(target_logits):
        import torch

        idx = proposed if _is_torch(proposed) else torch.as_tensor(np.asarray(proposed), dtype=torch.long)
        idx = idx.to(target_logits.device).long()
    else:
        idx = np.asarray(proposed, dtype=np.int64)
    for temperature in temperatures:
        if temperature <= 0:
            out.append(_to_numpy(p_arg == idx).astype(np.float64))
            continue
        p = _softmax(target_logits, temperature, truncation)
        if _is_torch(p):
            picked = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        else:
            picked = np.take_along_axis(p, idx[:, None], axis=-1)[:, 0]
        out.append(np.clip(_to_numpy(picked).astype(np.float64), 0.0, 1.0))
    return np.stack(out) if out else np.zeros((0, 0))


def argmax_draft_acceptance(target_logits: Any, draft_logits: Any, temperatures: Sequence[float],
                            truncation: Truncation = NO_TRUNCATION) -> np.ndarray:
    """``p_T(argmax q)`` per position (vLLM V1 greedy draft verified by its rejection sampler); the argmax
    is of the draft's raw logits, p_T is truncated by ``truncation``."""
    return proposal_acceptance(target_logits, _argmax(draft_logits), temperatures, truncation)


# ------------------------------------------------------------------------------------------------
# Per-step replay along one continuation
# ------------------------------------------------------------------------------------------------


def chain_from_positions(betas: np.ndarray, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Chain matrix for a model draft: ``chain[T, t, i] = beta[T, t + i]``.

    A step starting at position t can draft at most ``n - 1 - t`` tokens (the decoder stops at the
    continuation's length; the last position is produced by a plain step), so
    ``lengths[t] = min(k_max, n - 1 - t)``. Returns (chain [nT, n, k_max], lengths [n]).

    Known approximation: a text that stopped at EOS before max_new_tokens is treated as if it stopped at
    its budget. The decoder does not see the end coming and drafts past the EOS; those drafts are
    rejected unless the draft itself proposed the EOS and it was accepted, after which both models go on
    past it and acceptances continue. Leaving them out is neutral when acceptance past the end is like the
    rest (n-gram, whose proposals are known, models them exactly: :mod:`specwise.estimate.ngram`).
    """
    betas = np.asarray(betas, dtype=np.float64)
    n_temps, n = betas.shape
    chain = np.zeros((n_temps, n, k_max))
    for i in range(k_max):
        if i < n:
            chain[:, : n - i, i] = betas[:, i:]
    lengths = np.clip(n - 1 - np.arange(n), 0, k_max)
    return chain, lengths


@dataclass
class StepCounters:
    """Expected vLLM counters over one request's decode, one value per temperature.

    ``steps``: verify steps (decode steps) taken; ``drafts``: steps that carried at least one draft token
    (``vllm:spec_decode_num_drafts``); ``draft_tokens``; ``accepted`` (accepted draft tokens);
    ``accepted_per_pos[i]`` (steps whose i-th draft token was accepted).
    """

    steps: np.ndarray
    drafts: np.ndarray
    draft_tokens: np.ndarray
    accepted: np.ndarray
    accepted_per_pos: np.ndarray  # [nT, k]
    # Artefacts of the text's ends, kept apart so the profile describes steady-state decoding: one forced
    # plain step (the last position, or the prefill under vLLM's n-gram rules), and steps within k of the
    # end can draft fewer than k tokens.
    forced_plain_steps: np.ndarray | None = None
    full_drafts: np.ndarray | None = None
    full_accepted_per_pos: np.ndarray | None = None

    def __add__(self, other: "StepCounters") -> "StepCounters":
        return StepCounters(
            self.steps + other.steps,
            self.drafts + other.drafts,
            self.draft_tokens + other.draft_tokens,
            self.accepted + other.accepted,
            self.accepted_per_pos + other.accepted_per_pos,
            self.forced_plain_steps + other.forced_plain_steps,
            self.full_drafts + other.full_drafts,
            self.full_accepted_per_pos + other.full_accepted_per_pos,
        )

    @classmethod
    def zeros(cls, n_temps: int, k: int) -> "StepCounters":
        z = np.zeros(n_temps)
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), np.zeros((n_temps, k)), z.copy(), z.copy(),
                   np.zeros((n_temps, k)))

    def acceptance_rate(self) -> np.ndarray:
        """accepted / draft tokens (vLLM's "Avg Draft acceptance rate")."""
        return np.divide(self.accepted, self.draft_tokens, out=np.full_like(self.accepted, np.nan),
                         where=self.draft_tokens > 0)

    def tokens_per_step(self) -> np.ndarray:
        """Tokens emitted per verify step over all steps (bonus/correction token included)."""
        return np.divide(self.accepted + self.steps, self.steps, out=np.ones_like(self.steps),
                         where=self.steps > 0)

    def mean_acceptance_length(self) -> np.ndarray:
        """vLLM's "Mean acceptance length" = 1 + accepted / drafts (steps that drafted)."""
        return 1.0 + np.divide(self.accepted, self.drafts, out=np.zeros_like(self.accepted),
                               where=self.drafts > 0)

    def match_probability(self) -> np.ndarray:
        """Fraction of steps that proposed at least one token, the forced last step excluded (1 for model
        drafts)."""
        free = self.steps - self.forced_plain_steps
        return np.divide(self.drafts, free, out=np.ones_like(self.steps), where=free > 0)

    def per_position(self) -> np.ndarray:
        """Unconditional a_i = accepted_per_pos[i] / drafts (vLLM's per-position rate), over steps at least
        k tokens before the end of the continuation (steady state, no truncated drafts)."""
        return np.divide(self.full_accepted_per_pos, self.full_drafts[:, None],
                         out=np.zeros_like(self.full_accepted_per_pos), where=self.full_drafts[:, None] > 0)


def replay_steps(chain: np.ndarray, lengths: np.ndarray, k: int, matched: np.ndarray | None = None,
                 budget: int | None = None, prefill_plain: bool = False) -> StepCounters:
    """Expected counters of a speculative decoder with k drafts walking one continuation.

    ``chain[T, t, i]``: probability that draft i of a step starting at t is accepted given drafts < i
    were; ``lengths[t]``: how many tokens the proposer offers there (0 = no proposal: a plain step).
    ``v[t]``, the probability that some step starts at t, is propagated forward: a step at t with
    kk = min(k, lengths[t]) drafts accepts exactly m drafts with probability
    ``prod_{j<m} chain[t, j] * (1 - chain[t, m])`` (m < kk) or ``prod_{j<kk} chain[t, j]`` (m = kk),
    and the next step then starts at t + m + 1.

    With ``matched`` (n-gram drafts) the walk is the continuation's own: a step at t accepts exactly
    ``min(matched[t], kk)`` drafts of the text y, so the next step starts there with certainty, while the
    counters still add the expected acceptances ``chain`` (the conditional expectation given the text
    before t: unbiased for the loop's counters and less noisy than the 0/1 matches).

    ``prefill_plain`` (n-gram under vLLM's rules, :mod:`specwise.estimate.ngram`): the step at t = 0 is
    the prefill and carries no draft (``lengths[0]`` is 0), and no step is forced plain at the end: vLLM
    drafts past ``max_tokens`` and past an EOS (``lengths`` says how many). Otherwise ``budget``
    (max_new_tokens of the request, default n): the step at ``budget - 1`` is forced plain (a loop that
    drafts ``min(k, budget - 1 - t)``); a text that ended at EOS before its budget has no forced plain
    step, and its last steps may draft past the EOS.
    """
    n_temps, n, _ = chain.shape
    counters = StepCounters.zeros(n_temps, k)
    visit = np.zeros((n_temps, n + k + 2))
    if n == 0:
        return counters
    visit[:, 0] = 1.0
    for t in range(n):
        v = visit[:, t]
        if not v.any():
            continue
        counters.steps += v
        kk = int(min(k, lengths[t]))
        if t == (0 if prefill_plain else (n if budget is None else budget) - 1):
            counters.forced_plain_steps += v
        if kk <= 0:
            visit[:, t + 1] += v
            continue
        b = chain[:, t, :kk]
        survive = np.cumprod(b, axis=1)  # P(drafts 0..i all accepted)
        counters.drafts += v
        counters.draft_tokens += v * kk
        counters.accepted += v * survive.sum(axis=1)
        counters.accepted_per_pos[:, :kk] += v[:, None] * survive
        if n - 1 - t >= k:
            counters.full_drafts += v
            counters.full_accepted_per_pos[:, :kk] += v[:, None] * survive
        before = np.concatenate([np.ones((n_temps, 1)), survive[:, :-1]], axis=1)
        if matched is not None:
            visit[:, t + 1 + min(int(matched[t]), kk)] += v
            continue
        exactly = before * (1.0 - b)  # accept exactly m, m = 0..kk-1
        visit[:, t + 1 : t + 1 + kk] += v[:, None] * exactly
        visit[:, t + 1 + kk] += v * survive[:, -1]
    return counters


# ------------------------------------------------------------------------------------------------
# Cost model and recommended k
# ------------------------------------------------------------------------------------------------


def speedup_batch1(counters: StepCounters, cost_ratio: float) -> np.ndarray:
    """Batch-1 speedup over plain decoding (Leviathan Thm 3.8 with per-step counters).

    Plain decoding spends one target step per token. Speculation spends one target (verify) step per
    step plus ``cost_ratio`` target-steps per draft token, so
    ``speedup = (accepted + steps) / (steps + cost_ratio * draft_tokens)``. The verify step is assumed to
    cost as much as a one-token step (Leviathan's parallel-compute assumption, §1.3): true at batch 1 on a
    GPU, not under load, where ``specwise simulate`` decides.
    """
    tokens = counters.accepted + counters.steps
    cost = counters.steps + cost_ratio * counters.draft_tokens
    return np.divide(tokens, cost, out=np.ones_like(tokens), where=cost > 0)


def recommend_k(speedups_by_k: Sequence[float]) -> int:
    """k = 1.. maximising the batch-1 speedup; 0 when no k beats plain decoding."""
    best_k, best = 0, 1.0
    for k, s in enumerate(speedups_by_k, start=1):
        if s > best + 1e-12:
            best_k, best = k, s
    return best_k


# ------------------------------------------------------------------------------------------------
# Aggregation over requests
# ------------------------------------------------------------------------------------------------


@dataclass
class RequestChain:
    """One request's acceptance chain for one proposer/verification: the input to :func:`replay_steps`."""

    request_id: str
    category: str
    chain: np.ndarray  # [nT, n, k_max]
    lengths: np.ndarray  # [n]
    matched: np.ndarray | None = None  # [n] n-gram: the walk along the continuation (see replay_steps)
    budget: int | None = None  # max_new_tokens when the text ended at EOS before it (see replay_steps)
    prefill_plain: bool = False  # n-gram under vLLM's rules: plain prefill step, drafts past the end


@dataclass
class GroupSummary:
    """Aggregated estimate for one group of requests (a category or all), per temperature."""

    category: str
    num_requests: int
    counters_by_k: list[StepCounters]  # index k-1, pooled over requests (ratio of sums, like vLLM)
    request_rates_by_k: list[np.ndarray] = field(default_factory=list)  # [num_requests, nT] per k
    alpha1_by_request: np.ndarray | None = None  # [num_requests, nT]

    def rate_percentiles(self, k: int, q: float) -> np.ndarray:
        rates = self.request_rates_by_k[k - 1]
        out = np.full(rates.shape[1], np.nan)
        for j in range(rates.shape[1]):
            column = rates[:, j][~np.isnan(rates[:, j])]
            if column.size:
                out[j] = float(np.percentile(column, q))
        return out

    def heterogeneity(self) -> np.ndarray:
        """Std-dev over requests of logit(alpha_1 of the request), per temperature.

        This is the "per-request log-odds shift" of :class:`AcceptanceClass`: the spread of requests'
        first-position acceptance on the log-odds scale. Clipped to [0.005, 0.995] so a request with
        no or all acceptance stays finite.
        """
        if self.alpha1_by_request is None or self.alpha1_by_request.shape[0] < 2:
            return np.zeros(self.counters_by_k[0].steps.shape)
        out = []
        for j in range(self.alpha1_by_request.shape[1]):
            a = self.alpha1_by_request[:, j]
            a = np.clip(a[~np.isnan(a)], 0.005, 0.995)
            out.append(float(np.std(np.log(a / (1 - a)), ddof=1)) if a.size >= 2 else 0.0)
        return np.asarray(out)


def summarize_group(category: str, chains: Sequence[RequestChain], k_max: int, n_temps: int) -> GroupSummary:
    counters_by_k: list[StepCounters] = []
    rates_by_k: list[np.ndarray] = []
    alpha1 = np.full((len(chains), n_temps), np.nan)
    for k in range(1, k_max + 1):
        pooled = StepCounters.zeros(n_temps, k)
        rates = np.full((len(chains), n_temps), np.nan)
        for r, rc in enumerate(chains):
            c = replay_steps(rc.chain, rc.lengths, k, rc.matched, rc.budget, rc.prefill_plain)
            pooled = pooled + c
            rates[r] = c.acceptance_rate()
            if k == 1:
                alpha1[r] = c.acceptance_rate()
        counters_by_k.append(pooled)
        rates_by_k.append(rates)
    return GroupSummary(category, len(chains), counters_by_k, rates_by_k, alpha1)


def summarize(chains: Sequence[RequestChain], k_max: int, n_temps: int) -> dict[str, GroupSummary]:
    """Summaries for every category plus ``"all"`` (ratio-of-sums pooling, as vLLM's counters)."""
    groups: dict[str, list[RequestChain]] = {"all": list(chains)}
    for rc in chains:
        groups.setdefault(rc.category, []).append(rc)
    if len(groups) == 2:  # one category: identical to "all"
        groups = {"all": list(chains)}
    return {name: summarize_group(name, members, k_max, n_temps) for name, members in groups.items()}


def iid_alpha_from_length(mean_length: float, k: int) -> float:
    """Solve (1 - a^(k+1)) / (1 - a) = E[L] for a (the i.i.d.-equivalent alpha, §1.6)."""
    if mean_length <= 1.0:
        return 0.0
    if mean_length >= k + 1:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        value = sum(mid**i for i in range(k + 1))
        lo, hi = (mid, hi) if value < mean_length else (lo, mid)
    return (lo + hi) / 2


def finite_or_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
