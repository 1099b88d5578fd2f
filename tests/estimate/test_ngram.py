"""Prompt-lookup proposer and its replay over a continuation."""

import numpy as np
import pytest

from specwise.estimate.ngram import ngram_chain, propose, replay_proposals


def test_longest_match_most_recent_occurrence():
    ctx = [1, 2, 3, 4, 1, 2, 9, 5, 1, 2]
    # suffix [1, 2] occurs at 0 and 4: the most recent (4) is followed by 9, 5, 1
    assert propose(ctx, 3, 1, 3) == [9, 5, 1]
    # a longer match wins over a more recent shorter one: [4, 1, 2] -> 9
    assert propose([4, 1, 2, 9, 7, 1, 2, 4, 1, 2], 2, 1, 3) == [9, 7]


def test_no_match_and_min_length():
    assert propose([1, 2, 3, 4], 3, 1, 3) == []
    assert propose([5, 6, 7, 5], 2, 2, 3) == []  # only a 1-gram matches, min is 2
    assert propose([5, 6, 7, 5], 2, 1, 3) == [6, 7]


def test_proposal_truncated_at_context_end():
    assert propose([7, 8, 7], 5, 1, 1) == [8, 7]


def test_replay_and_chain_at_t0_and_t1():
    prompt = [1, 2, 3]
    cont = [1, 2, 3, 4]
    proposals, lengths = replay_proposals(prompt, cont, 3, 1, 2)
    # t=0: context 1 2 3 -> suffix [3] never occurred earlier -> no proposal
    assert lengths[0] == 0
    # t=1: context 1 2 3 1 -> [3, 1]? no; [1] at 0 -> propose 2 3 1, capped at n-1-t = 2
    assert proposals[1, :2].tolist() == [2, 3] and lengths[1] == 2
    vocab = 6
    logits = np.full((4, vocab), -5.0)
    for pos, tok in enumerate(cont):
        logits[pos, tok] = 5.0  # the target's argmax is the continuation itself
    chain = ngram_chain(logits, proposals, lengths, [0.0, 1.0])
    assert chain[0, 1, :2].tolist() == [1.0, 1.0]  # proposals 2, 3 match positions 1, 2
    p_top = np.exp(5.0) / (np.exp(5.0) + 5 * np.exp(-5.0))
    assert chain[1, 1, 0] == pytest.approx(p_top)


def test_incremental_replay_equals_direct_proposals():
    rng = np.random.default_rng(0)
    for trial in range(30):
        prompt = rng.integers(0, 4, size=rng.integers(1, 12)).tolist()
        cont = rng.integers(0, 4, size=rng.integers(1, 25)).tolist()
        lo = int(rng.integers(1, 3))
        hi = lo + int(rng.integers(0, 3))
        proposals, lengths = replay_proposals(prompt, cont, 4, lo, hi)
        for t in range(len(cont)):
            cap = min(4, len(cont) - 1 - t)
            expected = propose(prompt + cont[:t], cap, lo, hi) if cap > 0 else []
            assert proposals[t, : lengths[t]].tolist() == expected, (trial, t)


@pytest.mark.parametrize("eos", [None, 4])
def test_walk_along_loop_output_reproduces_loop_counters(eos):
    """The loop's n-gram counters are a function of the text it emits: a one-hot draft is accepted iff the
    emitted token equals it. Replaying lookup + matched prefixes over that text (the estimate's walk)
    gives exactly the loop's steps, drafts, drafted and accepted tokens, at T > 0 as at T = 0.

    With an EOS (token 4, never in the prompt, so no proposal contains it) texts stop before the budget
    of 24 tokens; the loop does not see the end coming and drafts up to min(k, budget - 1 - t) tokens at
    its last steps, all rejected after the EOS. The replay must be told the budget to count those drafts."""
    torch = pytest.importorskip("torch")
    from specwise.estimate.acceptance import replay_steps
    from specwise.estimate.ngram import matched_prefix
    from specwise.estimate.validate import TableSource, speculative_decode

    rng = np.random.default_rng(1)
    vocab = 4 if eos is None else 5
    table = {(x,): rng.normal(scale=2.0, size=vocab) for x in range(vocab)}
    if eos is not None:
        for x in range(vocab):
            table[(x,)][eos] = 0.5  # about one token in eight (T = 1) ends the text
    budget, ended_early, capped_differs = 24, 0, 0
    for seed in range(20):
        for temperature in (0.0, 0.7, 1.0):
            prompt = [0, 1, 2, 0, 1, 3, 0]
            gen = torch.Generator().manual_seed(seed)
            tokens, counters = speculative_decode(prompt, TableSource(table), None, "ngram", 3, temperature, budget,
                                                  eos, gen, lookup_min=1, lookup_max=2)
            early = eos is not None and len(tokens) < budget
            ended_early += early
            proposals, lengths = replay_proposals(prompt, tokens, 3, 1, 2, budget if early else None)
            matched = matched_prefix(proposals, lengths, tokens)
            indicator = np.zeros((1, len(tokens), 3))
            for t, m in enumerate(matched):
                indicator[0, t, :m] = 1.0
            replay = replay_steps(indicator, lengths, 3, matched, budget if early else None)
            assert (replay.steps[0], replay.drafts[0], replay.draft_tokens[0], replay.accepted[0]) == (
                counters.steps, counters.drafts, counters.draft_tokens, counters.accepted), (seed, temperature)
            if early:
                capped = replay_steps(indicator, replay_proposals(prompt, tokens, 3, 1, 2)[1], 3, matched)
                capped_differs += capped.draft_tokens[0] != counters.draft_tokens
    if eos is not None:
        # the EOS case is exercised, and capping drafts at the text's end would miscount them
        assert ended_early >= 20 and capped_differs >= 5, (ended_early, capped_differs)


def test_replay_walk_follows_matched_prefixes():
    from specwise.estimate.acceptance import replay_steps

    # one step at t=0 proposing 3 tokens with 0.5 expected acceptance each; the text matched 2 of them
    chain = np.zeros((1, 6, 3))
    chain[0, 0] = [0.5, 0.5, 0.5]
    lengths = np.array([3, 0, 0, 0, 0, 0])
    walked = replay_steps(chain, lengths, 3, np.array([2, 0, 0, 0, 0, 0]))
    # expected acceptances at the step, but the next step starts at t = 3 with certainty: 1 + 3 plain steps
    assert walked.accepted[0] == pytest.approx(0.5 + 0.25 + 0.125)
    assert walked.steps[0] == 4 and walked.drafts[0] == 1
    spread = replay_steps(chain, lengths, 3)
    assert spread.steps[0] == pytest.approx(1 + 0.5 * 5 + 0.25 * 4 + 0.125 * 3 + 0.125 * 2)


def test_ngram_contexts_are_the_evaluated_temperatures():
    from specwise.estimate.pipeline import auto_context_temperatures

    assert auto_context_temperatures([0.0, 0.7, 1.0]) == [0.0, 0.5, 1.0]
    assert auto_context_temperatures([0.0, 0.7, 1.0], exact=True) == [0.0, 0.7, 1.0]


class _FirstOrderLM:
    """A causal "LM" whose logits at a position depend on that position's token only (a table), with the
    call signature the pipeline uses (``model(input_ids=..., attention_mask=...).logits``)."""

    def __init__(self, table):
        import torch

        self.table = torch.as_tensor(table, dtype=torch.float32)

    def __call__(self, input_ids, attention_mask=None):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.table[input_ids])


def _sample_text(table, prompt, temperature, budget, eos, rng):
    out, last = [], prompt[-1]
    while len(out) < budget:
        z = table[last] / temperature
        p = np.exp(z - z.max())
        last = int(rng.choice(len(p), p=p / p.sum()))
        out.append(last)
        if last == eos:
            break
    return out


def test_ngram_estimate_is_unbiased_against_the_loop_at_t_above_0():
    """End to end on a first-order toy model (no weights), at T = 0.7 and 1: the estimate (the pipeline's
    n-gram records and walk, over its own sampled texts) and the real loop (its own texts) are independent
    samples of one quantity. Over 800 texts per side the pooled accepted/drafted must agree within 4
    standard errors of the paired difference (about 0.01 here; a false alarm once in ~16000 seeds, and the
    seeds are fixed) and within 0.03 absolute.

    Texts stop at an EOS (about 1 in 4 tokens; a few reach the 12-token budget), so the end of the text
    matters: dropping the drafts the loop makes past the EOS (capping proposals at the text's length, as
    the estimate did before) overstates acceptance by ~0.06, over 4 standard errors: the test sees it."""
    torch = pytest.importorskip("torch")
    from specwise.estimate.pipeline import _ngram_records, request_counters
    from specwise.estimate.validate import TableSource, compare_ratios, speculative_decode
    from specwise.schemas.estimate import EstimateSettings

    rng = np.random.default_rng(7)
    vocab, eos, budget, k, n = 6, 5, 12, 3, 800
    table = rng.normal(scale=0.7, size=(vocab, vocab))
    for x in range(4):
        table[x, (x + 1) % 4] += 2.5  # a cycle 0 -> 1 -> 2 -> 3 -> 0 that prompt lookup can copy
    table[:, eos] = 1.5
    prompt = [0, 1, 2, 3, 0, 1, 4, 2, 3, 0]
    temps = [0.7, 1.0]
    settings = EstimateSettings(target="toy", methods=["ngram"], temperatures=temps, k_max=k, max_new_tokens=budget,
                                context_temperatures=temps, prompt_lookup_min=1, prompt_lookup_max=2, seed=0,
                                prompts="toy")
    model = _FirstOrderLM(table)
    loop_model = TableSource({(x,): table[x] for x in range(vocab)})
    for j, temperature in enumerate(temps):
        texts = [_sample_text(table, prompt, temperature, budget, eos, rng) for _ in range(n)]
        assert 0 < sum(len(y) == budget for y in texts) < n // 4
        budgets = [budget if len(y) < budget else None for y in texts]
        rows = [torch.as_tensor(table[[prompt[-1]] + y[:-1]], dtype=torch.float32) for y in texts]
        loop = []
        for seed in range(n):
            gen = torch.Generator().manual_seed(1000 + seed)
            _, c = speculative_decode(prompt, loop_model, None, "ngram", k, temperature, budget, eos, gen,
                                      lookup_min=1, lookup_max=2)
            loop.append((c.accepted, c.draft_tokens))
        comparisons = {}
        for name, given in (("budget", budgets), ("capped", None)):
            recs = _ngram_records(model, rows, [prompt] * n, texts, settings, [temperature], "cpu", vocab, given)
            records = [{"id": str(i), "category": "toy", "contexts": [
                {"temperature": temperature, "temps": [j], "continuation": y, "pairs": {}, "ngram": {"deployed": r}}]}
                for i, (y, r) in enumerate(zip(texts, recs))]
            est = request_counters(records, "ngram", "argmax_draft", settings, temperature, k)
            comparisons[name] = compare_ratios([est[str(i)][0] for i in range(n)], [est[str(i)][1] for i in range(n)],
                                               [a for a, _ in loop], [d for _, d in loop])
        right, capped = comparisons["budget"], comparisons["capped"]
        assert right.difference_stderr < 0.012, right
        assert abs(right.difference) <= 4 * right.difference_stderr and abs(right.difference) <= 0.03, right
        assert capped.difference > 4 * capped.difference_stderr, capped
