"""A real speculative decoder, to measure acceptance and check the estimate against it.

Three verification paths, all lossless (their output follows the target's distribution at temperature T):

* ``lossless``: Leviathan/Chen speculative sampling (docs/reference/theory-and-calibration.md §1.1). The draft samples
  x_i ~ q_T; x_i is accepted with probability min(1, p_T(x_i) / q_T(x_i)); at the first rejection a token
  is drawn from norm(max(0, p_T - q_T)); if all k are accepted a bonus token is drawn from p_T;
* ``argmax_draft``: vLLM V1's default (``draft_sample_method=greedy``, §1.5): the draft proposes
  argmax q, treated as one-hot, so x_i is accepted with probability p_T(x_i) and a rejection draws from p_T
  with x_i removed;
* ``ngram``: prompt-lookup proposals (:mod:`specwise.estimate.ngram`) verified like ``argmax_draft``;
  a step without a match is a plain target step and carries no draft. The loop follows the engine of the
  vLLM version it is given (:class:`specwise.estimate.ngram.ProposerRules`): under V1 the first step
  (prefill) carries no draft, drafts are not trimmed to the budget, and the accepted prefix counts before
  the output is cut at the budget or an EOS.

At T = 0 every path is greedy: a draft token is accepted iff it equals the target's argmax.

With a request top-k/top-p (:class:`specwise.estimate.acceptance.Truncation`) the loop does what vLLM
does: p_T is the target's truncated, renormalised distribution in the accept test, the residual and the
bonus token, while the draft samples from q_T with the temperature only (``lossless``) or proposes its
raw argmax (``argmax_draft``). The output then follows the truncated p_T at every step.

Models are reached through :class:`LogitsSource` (``logits(sequence, n_rows)``), implemented with a
KV cache for transformers models (:class:`CachedCausalLM`) and by lookup tables for the distribution check
(:class:`TableSource`), so that the check exercises this very loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from specwise.estimate.acceptance import NO_TRUNCATION, Truncation, truncate_scaled_logits
from specwise.estimate.ngram import ProposerRules, propose

VERIFICATIONS = ("lossless", "argmax_draft", "ngram")


class LogitsSource(Protocol):
    def logits(self, sequence: Sequence[int], n_rows: int) -> Any:
        """Logits predicting positions len(sequence)-n_rows+1 .. len(sequence) (one row each)."""

    def keep(self, length: int) -> None:
        """Forget any cached state beyond the first ``length`` tokens."""


class CachedCausalLM:
    """A transformers causal LM with an incremental KV cache cropped after rejections."""

    def __init__(self, model: Any, device: str, vocab: int | None = None) -> None:
        self.model = model
        self.device = device
        self.vocab = vocab
        self.cache: Any = None
        self.cached = 0

    def reset(self) -> None:
        self.cache = None
        self.cached = 0

    def logits(self, sequence: Sequence[int], n_rows: int) -> Any:
        import torch

        # the last n_rows rows must be recomputed, so at least that many tokens are fed
        start = min(self.cached, len(sequence) - n_rows)
        if start < self.cached:
            self.keep(start)
        feed = torch.tensor([list(sequence[start:])], dtype=torch.long, device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=feed, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.cached = len(sequence)
        rows = out.logits[0, -n_rows:].float()
        return rows[:, : self.vocab] if self.vocab else rows

    def keep(self, length: int) -> None:
        if self.cache is not None and length < self.cached:
            self.cache.crop(length - self.cached)  # negative: tokens to drop (all transformers versions)
            self.cached = length


class TableSource:
    """Logits from a table keyed by the last token(s): for exact checks of the loop's distribution."""

    def __init__(self, table: dict[tuple[int, ...], np.ndarray], context: int = 1) -> None:
        self.table = table
        self.context = context

    def logits(self, sequence: Sequence[int], n_rows: int) -> Any:
        import torch

        rows = []
        for end in range(len(sequence) - n_rows + 1, len(sequence) + 1):
            key = tuple(sequence[max(0, end - self.context) : end])
            rows.append(self.table[key])
        return torch.tensor(np.stack(rows), dtype=torch.float64)

    def keep(self, length: int) -> None:
        return None


@dataclass
class LoopCounters:
    """Measured vLLM-style counters of one decode."""

    steps: int = 0
    drafts: int = 0
    draft_tokens: int = 0
    accepted: int = 0
    accepted_per_pos: list[int] = field(default_factory=list)
    # per-draft second moments, for the standard error of the ratio accepted / drafted (drafts are the
    # independent units; tokens within one draft are not)
    sum_accepted_sq: int = 0
    sum_drafted_sq: int = 0
    sum_accepted_drafted: int = 0
    # the same moments over requests (set by measure_acceptance): requests differ a lot (n-gram matches
    # cluster in a few requests), so drafts of one request are not independent
    requests_with_drafts: int = 0
    req_sum_accepted_sq: int = 0
    req_sum_drafted_sq: int = 0
    req_sum_accepted_drafted: int = 0
    # per request, in prompt order (set by measure_acceptance): for the paired comparison with the estimate
    request_accepted: list[int] = field(default_factory=list)
    request_drafted: list[int] = field(default_factory=list)

    def add(self, other: "LoopCounters") -> None:
        self.steps += other.steps
        self.drafts += other.drafts
        self.draft_tokens += other.draft_tokens
        self.accepted += other.accepted
        self.sum_accepted_sq += other.sum_accepted_sq
        self.sum_drafted_sq += other.sum_drafted_sq
        self.sum_accepted_drafted += other.sum_accepted_drafted
        width = max(len(self.accepted_per_pos), len(other.accepted_per_pos))
        mine = self.accepted_per_pos + [0] * (width - len(self.accepted_per_pos))
        theirs = other.accepted_per_pos + [0] * (width - len(other.accepted_per_pos))
        self.accepted_per_pos = [a + b for a, b in zip(mine, theirs)]

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.draft_tokens if self.draft_tokens else None

    @property
    def acceptance_rate_stderr(self) -> float | None:
        """Delta-method standard error of accepted / drafted, clustered by request when several requests
        drafted (else with drafts as the sampling unit)."""
        if self.requests_with_drafts >= 2:
            return ratio_stderr(self.accepted, self.draft_tokens, self.req_sum_accepted_sq, self.req_sum_drafted_sq,
                                self.req_sum_accepted_drafted, self.requests_with_drafts)
        return ratio_stderr(self.accepted, self.draft_tokens, self.sum_accepted_sq, self.sum_drafted_sq,
                            self.sum_accepted_drafted, self.drafts)


def ratio_stderr(accepted: float, drafted: float, sum_a2: float, sum_d2: float, sum_ad: float,
                 drafts: float) -> float | None:
    if drafted <= 0 or drafts < 2:
        return None
    r = accepted / drafted
    residual = max(sum_a2 - 2 * r * sum_ad + r * r * sum_d2, 0.0)
    return (residual * drafts / (drafts - 1)) ** 0.5 / drafted


@dataclass
class RatioComparison:
    """Estimated vs measured accepted/drafted over the same requests, with standard errors.

    ``difference`` = estimated - measured. Standard errors are delta-method (linearised ratio of sums),
    clustered by request; ``difference_stderr`` is paired by request: the estimate and the loop are two
    independent samples on the same prompts, so the spread between prompts, common to both, cancels and
    what is left is the sampling noise of each side's texts. ``ci95`` is difference +- 1.96 standard errors.
    """

    estimated: float
    measured: float
    difference: float
    estimated_stderr: float | None
    measured_stderr: float | None
    difference_stderr: float | None
    ci95: tuple[float, float] | None
    num_requests: int

    @property
    def compatible(self) -> bool | None:
        """The difference lies within its 95% interval of 0 (no evidence of a bias)."""
        if self.difference_stderr is None:
            return None
        return abs(self.difference) <= 1.96 * self.difference_stderr

    def ci_within(self, tolerance: float) -> bool | None:
        """The whole 95% interval of the difference lies inside +-tolerance (agreement shown, not just
        not refuted)."""
        if self.ci95 is None:
            return None
        return -tolerance <= self.ci95[0] and self.ci95[1] <= tolerance


def request_ratio_stderr(accepted: Sequence[float], drafted: Sequence[float]) -> float | None:
    """Delta-method standard error of sum(accepted) / sum(drafted) with requests as the sampling unit (None
    with fewer than two requests or nothing drafted): one side's error, usable when the other side has no
    per-request counters to pair with (:func:`compare_ratios` pairs them when it can)."""
    a, d = np.asarray(accepted, dtype=np.float64), np.asarray(drafted, dtype=np.float64)
    if len(a) < 2 or d.sum() <= 0:
        return None
    u = (a - a.sum() / d.sum() * d) / d.sum()
    return float(np.sqrt(len(a) / (len(a) - 1) * (u**2).sum()))


def compare_ratios(est_accepted: Sequence[float], est_drafted: Sequence[float], meas_accepted: Sequence[float],
                   meas_drafted: Sequence[float]) -> RatioComparison | None:
    """Per-request counters of both sides (index-aligned) -> :class:`RatioComparison` (None if a side drafted
    nothing)."""
    ea, ed = np.asarray(est_accepted, dtype=np.float64), np.asarray(est_drafted, dtype=np.float64)
    ma, md = np.asarray(meas_accepted, dtype=np.float64), np.asarray(meas_drafted, dtype=np.float64)
    if ea.shape != ma.shape or ed.sum() <= 0 or md.sum() <= 0:
        return None
    r_e, r_m = ea.sum() / ed.sum(), ma.sum() / md.sum()
    # influence of each request on each ratio (their sums are 0)
    u = (ea - r_e * ed) / ed.sum()
    w = (ma - r_m * md) / md.sum()
    n = len(ea)
    if n < 2:
        return RatioComparison(float(r_e), float(r_m), float(r_e - r_m), None, None, None, None, n)
    scale = n / (n - 1)
    se_e = float(np.sqrt(scale * (u**2).sum()))
    se_m = float(np.sqrt(scale * (w**2).sum()))
    se_d = float(np.sqrt(scale * ((u - w) ** 2).sum()))
    diff = float(r_e - r_m)
    return RatioComparison(float(r_e), float(r_m), diff, se_e, se_m, se_d, (diff - 1.96 * se_d, diff + 1.96 * se_d),
                           n)


def _probs(row: Any, temperature: float, truncation: Truncation = NO_TRUNCATION) -> Any:
    scaled = row.double() / temperature
    if truncation.active:
        scaled = truncate_scaled_logits(scaled, truncation)
    return scaled.softmax(-1)


def _residual(p: Any, q: Any) -> Any:
    """Where a rejected position resamples from: norm(max(0, p - q)) (Leviathan Alg. 1)."""
    return (p - q).clamp(min=0)


def _sample(probs: Any, generator: Any) -> int:
    import torch

    # sampled on the generator's device, so CPU and CUDA runs draw from one seeded stream each
    return int(torch.multinomial(probs.to(generator.device), 1, generator=generator).item())


def speculative_decode(prompt: Sequence[int], target: LogitsSource, draft: LogitsSource | None,
                       verification: str, k: int, temperature: float, max_new_tokens: int,
                       eos_token_id: int | None, generator: Any, lookup_min: int = 5,
                       lookup_max: int = 5,
                       truncation: Truncation = NO_TRUNCATION, rules: ProposerRules | None = None,
                       max_model_len: int | None = None) -> tuple[list[int], LoopCounters]:
    """Decode ``max_new_tokens`` (or up to EOS) with speculation; returns (tokens, counters).

    ``truncation`` (top-k/top-p) applies to the target's p_T only, as in vLLM (module docstring).
    ``rules`` (n-gram; default: the newest vLLM the catalog covers) and ``max_model_len`` say how the
    proposer and the engine around it behave.
    """
    import torch

    if verification not in VERIFICATIONS:
        raise ValueError(f"unknown verification {verification!r}")
    if verification != "ngram" and draft is None:
        raise ValueError("model-draft verification needs a draft")
    if verification == "ngram" and rules is None:
        rules = ProposerRules.for_version(None)
    seq = list(prompt)
    generated: list[int] = []
    counters = LoopCounters(accepted_per_pos=[0] * k)
    greedy = temperature <= 0
    while len(generated) < max_new_tokens:
        drafts: list[int] = []
        draft_probs: list[Any] = []
        if verification == "ngram":
            assert rules is not None
            # vLLM drafts k whatever the budget left, but never at the prefill step (rules.prefill_plain)
            if not (rules.prefill_plain and not generated):
                drafts = propose(seq, k, lookup_min, lookup_max, rules, max_model_len)
            kk = 0
        else:
            kk = min(k, max_new_tokens - len(generated) - 1)
        if kk > 0:
            assert draft is not None
            for i in range(kk):
                row = draft.logits(seq + drafts, 1)[0]
                if greedy or verification == "argmax_draft":
                    token = int(row.argmax())
                else:
                    q = _probs(row, temperature)
                    token = _sample(q, generator)
                    draft_probs.append(q)
                drafts.append(token)
        rows = target.logits(seq + drafts, len(drafts) + 1)
        emitted: list[int] = []
        accepted = 0
        for i, token in enumerate(drafts):
            if greedy:
                best = int(rows[i].argmax())
                if best == token:
                    emitted.append(token)
                    accepted += 1
                    continue
                emitted.append(best)
                break
            p = _probs(rows[i], temperature, truncation)
            u = float(torch.rand(1, generator=generator, dtype=torch.float64, device=generator.device))
            if verification == "lossless":
                q = draft_probs[i]
            else:  # one-hot draft: min(1, p/q) = p(token); the residual is p with the token removed
                q = torch.zeros_like(p)
                q[token] = 1.0
            ratio = float(p[token] / q[token]) if float(q[token]) > 0 else 1.0
            if u < min(1.0, ratio):
                emitted.append(token)
                accepted += 1
                continue
            residual = _residual(p, q)
            total = float(residual.sum())
            emitted.append(_sample(residual / total, generator) if total > 0 else int(p.argmax()))
            break
        else:  # all drafts accepted (or none proposed): bonus token from the last row
            last = rows[len(drafts)]
            emitted.append(int(last.argmax()) if greedy
                           else _sample(_probs(last, temperature, truncation), generator))
        counters.steps += 1
        if drafts:
            counters.drafts += 1
            counters.draft_tokens += len(drafts)
            counters.accepted += accepted
            for i in range(accepted):
                counters.accepted_per_pos[i] += 1
            counters.sum_accepted_sq += accepted * accepted
            counters.sum_drafted_sq += len(drafts) * len(drafts)
            counters.sum_accepted_drafted += accepted * len(drafts)
        if eos_token_id is not None and eos_token_id in emitted:
            emitted = emitted[: emitted.index(eos_token_id) + 1]
            generated.extend(emitted)
            break
        seq.extend(emitted)
        generated.extend(emitted)
        # caches hold at most the tokens both models have seen and that survived: len(seq) - 1
        target.keep(len(seq) - 1)
        if draft is not None:
            draft.keep(len(seq) - 1)
    return generated[:max_new_tokens], counters


# ------------------------------------------------------------------------------------------------
# Distribution check: the loop's first two tokens against the target's exact joint distribution
# ------------------------------------------------------------------------------------------------


@dataclass
class DistributionCheck:
    verification: str
    temperature: float
    samples: int
    categories: int
    chi_square: float
    dof: int
    p_value: float
    false_alarm_rate: float
    passed: bool


def chi_square_sf(statistic: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (regularised upper incomplete gamma)."""
    import torch

    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                         torch.tensor(statistic / 2.0, dtype=torch.float64)))


def slice_tables(target_rows: dict[tuple[int, ...], Any], draft_rows: dict[tuple[int, ...], Any],
                 vocab_slice: Sequence[int]) -> tuple[dict, dict, dict[int, int]]:
    """Restrict logits tables to a vocabulary slice and renumber tokens 0..len(slice)-1."""
    index = {tok: i for i, tok in enumerate(vocab_slice)}
    cols = list(vocab_slice)

    def cut(rows: dict) -> dict:
        out = {}
        for key, row in rows.items():
            if all(t in index for t in key):
                out[tuple(index[t] for t in key)] = np.asarray(row, dtype=np.float64)[cols]
        return out

    return cut(target_rows), cut(draft_rows), index


def check_output_distribution(target_table: dict[tuple[int, ...], np.ndarray],
                              draft_table: dict[tuple[int, ...], np.ndarray] | None,
                              prefix_token: int, verification: str, temperature: float, samples: int,
                              seed: int = 0, false_alarm_rate: float = 0.001, k: int = 2,
                              lookup_prefix: Sequence[int] | None = None,
                              truncation: Truncation = NO_TRUNCATION) -> DistributionCheck:
    """Run the loop ``samples`` times for 2 tokens and chi-square the pairs against p_T(x1) p_T(x2 | x1).

    p_T is truncated by ``truncation`` (the loop's output must follow the truncated target).

    Tables map a one-token context to logits over a small vocabulary slice (first-order models), so the
    exact joint distribution is known. Categories with expected count < 5 are pooled into one. Under a
    lossless loop the test rejects with probability ``false_alarm_rate``.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    target = TableSource(target_table)
    draft = TableSource(draft_table) if draft_table is not None else None
    vocab = len(next(iter(target_table.values())))
    prompt = list(lookup_prefix or []) + [prefix_token]
    counts = np.zeros((vocab, vocab))
    for _ in range(samples):
        tokens, _ = speculative_decode(prompt, target, draft, verification, k, temperature, 2, None, generator,
                                       lookup_min=1, lookup_max=2, truncation=truncation)
        counts[tokens[0], tokens[1]] += 1
    p1 = _probs(torch.tensor(target_table[(prefix_token,)]), temperature, truncation).numpy()
    expected = np.zeros((vocab, vocab))
    for x1 in range(vocab):
        p2 = _probs(torch.tensor(target_table[(x1,)]), temperature, truncation).numpy()
        expected[x1] = samples * p1[x1] * p2
    obs, exp = counts.ravel(), expected.ravel()
    big = exp >= 5
    observed = list(obs[big]) + ([obs[~big].sum()] if (~big).any() else [])
    expect = list(exp[big]) + ([exp[~big].sum()] if (~big).any() else [])
    stat = float(sum((o - e) ** 2 / e for o, e in zip(observed, expect) if e > 0))
    dof = max(1, len(observed) - 1)
    p_value = chi_square_sf(stat, dof)
    return DistributionCheck(verification, temperature, samples, len(observed), stat, dof, p_value,
                             false_alarm_rate, p_value >= false_alarm_rate)


def first_order_tables(target: Any, draft: Any, prefix: Sequence[int], vocab_slice_size: int,
                       device: str) -> tuple[dict, dict, list[int]]:
    """Tables of real-model logits on a vocabulary slice, each conditioned on ``prefix`` + one token.

    The slice is the most likely next tokens after ``prefix`` under the target; each table row holds the
    model's logits for the next token after ``prefix + [x]``, restricted to the slice. The resulting
    first-order model keeps the real models' shapes of p and q while making the exact target
    distribution computable.
    """
    import torch

    with torch.no_grad():
        base = target(input_ids=torch.tensor([list(prefix)], device=device)).logits[0, -1].float()
        slice_tokens = [int(t) for t in base.topk(vocab_slice_size).indices]
        batch = torch.tensor([list(prefix) + [t] for t in slice_tokens], device=device)
        t_rows = target(input_ids=batch).logits[:, -1].float().cpu().numpy()
        d_rows = draft(input_ids=batch).logits[:, -1].float().cpu().numpy() if draft is not None else None
    target_table = {(t,): t_rows[i] for i, t in enumerate(slice_tokens)}
    draft_table = {(t,): d_rows[i] for i, t in enumerate(slice_tokens)} if d_rows is not None else None
    t_cut, d_cut, _ = slice_tables(target_table, draft_table or {}, slice_tokens)
    return t_cut, (d_cut if draft is not None else None), slice_tokens



def measure_acceptance(models: Any, prompts: Sequence[Sequence[int]], verification: str, k: int,
                       temperature: float, max_new_tokens: Sequence[int], seed: int, lookup_min: int = 5,
                       lookup_max: int = 5, on_request: Any = None,
                       truncation: Truncation = NO_TRUNCATION, rules: ProposerRules | None = None,
                       max_model_len: int | None = None) -> LoopCounters:
    """Decode every prompt with speculation and pool the measured counters (vLLM's definitions)."""
    import torch

    target = CachedCausalLM(models.target.model, models.target.device, models.vocab)
    draft = None
    if verification != "ngram":
        draft = CachedCausalLM(models.draft.model, models.draft.device, models.vocab)
    total = LoopCounters(accepted_per_pos=[0] * k)
    eos = models.target.tokenizer.eos_token_id
    for index, prompt in enumerate(prompts):
        target.reset()
        if draft is not None:
            draft.reset()
        generator = torch.Generator(device=models.target.device).manual_seed(seed * 1_000_003 + index)
        tokens, counters = speculative_decode(prompt, target, draft, verification, k, temperature,
                                              max_new_tokens[index], eos, generator, lookup_min, lookup_max,
                                              truncation, rules, max_model_len)
        total.add(counters)
        total.request_accepted.append(counters.accepted)
        total.request_drafted.append(counters.draft_tokens)
        if counters.draft_tokens:
            total.requests_with_drafts += 1
            total.req_sum_accepted_sq += counters.accepted ** 2
            total.req_sum_drafted_sq += counters.draft_tokens ** 2
            total.req_sum_accepted_drafted += counters.accepted * counters.draft_tokens
        if on_request:
            on_request(len(tokens))
    return total
