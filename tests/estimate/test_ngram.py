"""Prompt-lookup proposer (as vLLM proposes per version) and its replay over a continuation."""

import numpy as np
import pytest

from specwise.estimate.ngram import ProposerRules, ngram_chain, propose, replay_proposals

V032 = ProposerRules.for_version("0.32.0")
V092 = ProposerRules.for_version("0.9.2")
V06 = ProposerRules.for_version("0.6.0")


def test_rules_per_version_come_from_the_catalog():
    assert (V032.name, V092.name, V06.name) == ("v1_longest_earliest", "v1_first_match_no_overlap",
                                               "v0_first_match_padded")
    # 0.8.2 ran JSON-configured ngram on V1, 0.8.3-0.8.x on V0 (catalog ranges[].engine_by_method)
    assert ProposerRules.for_version("0.8.2").name == "v1_first_match_no_overlap"
    assert ProposerRules.for_version("0.8.5").name == "v0_first_match_padded"
    assert "_find_longest_matched_ngram_and_propose_tokens" in V032.source
    assert ProposerRules.for_version(None).name == "v1_longest_earliest"


def test_longest_match_earliest_occurrence():
    ctx = [1, 2, 3, 4, 1, 2, 9, 5, 1, 2]
    # suffix [1, 2] occurs at 0 and 4: vLLM takes the earliest (0), followed by 3, 4, 1
    assert propose(ctx, 3, 1, 3, V032) == [3, 4, 1]
    # a longer match wins over an earlier shorter one: [4, 1, 2] -> 9
    assert propose([4, 1, 2, 9, 7, 1, 2, 4, 1, 2], 2, 1, 3, V032) == [9, 7]


def test_overlap_and_padding_differ_by_version():
    # 0.32: the suffix [7, 7] matches at 0, overlapping itself; one token follows
    assert propose([7, 7, 7], 3, 1, 3, V032) == [7]
    # before 0.10.2 the match must end before the suffix: only [7] at 0 qualifies
    assert propose([7, 7, 7], 3, 1, 3, V092) == [7, 7]
    # V0 always proposes k tokens, padding with the last context token
    assert propose([7, 8, 7], 3, 1, 3, V06) == [8, 7, 7]


def test_no_match_and_min_length():
    assert propose([1, 2, 3, 4], 3, 1, 3, V032) == []
    assert propose([5, 6, 7, 5], 2, 2, 3, V032) == []  # only a 1-gram matches, min is 2
    assert propose([5, 6, 7, 5], 2, 1, 3, V032) == [6, 7]


def test_proposal_truncated_at_context_end_and_near_max_model_len():
    assert propose([7, 8, 7], 5, 1, 1, V032) == [8, 7]
    ctx = [1, 2, 3, 4, 1]
    assert propose(ctx, 3, 1, 1, V032) == [2, 3, 4]
    # max_model_len 8 with 5 tokens: the verify step may hold 8 - 5 - 1 = 2 drafts
    assert propose(ctx, 3, 1, 1, V032, max_model_len=8) == [2, 3]
    assert propose(ctx, 3, 1, 1, V032, max_model_len=6) == []


def test_replay_and_chain_at_t0_and_t1():
    prompt = [1, 2, 3]
    cont = [1, 2, 3, 4]
    proposals, lengths = replay_proposals(prompt, cont, 3, 1, 2, V032)
    # t=0 is the prefill step: never a draft
    assert lengths[0] == 0
    # t=1: context 1 2 3 1 -> [3, 1] never occurred; [1] at 0 -> 2 3 1, not capped at the text's end
    assert proposals[1].tolist() == [2, 3, 1] and lengths[1] == 3
    vocab = 6
    logits = np.full((4, vocab), -5.0)
    for pos, tok in enumerate(cont):
        logits[pos, tok] = 5.0  # the target's argmax is the continuation itself
    chain = ngram_chain(logits, proposals, lengths, [0.0, 1.0])
    assert chain[0, 1].tolist() == [1.0, 1.0, 0.0]  # 2, 3 match positions 1, 2; 1 is not 4
    p_top = np.exp(5.0) / (np.exp(5.0) + 5 * np.exp(-5.0))
    assert chain[1, 1, 0] == pytest.approx(p_top)


@pytest.mark.parametrize("version", ["0.32.0", "0.9.2", "0.6.0"])
def test_incremental_replay_equals_direct_proposals(version):
    rules = ProposerRules.for_version(version)
    rng = np.random.default_rng(0)
    for trial in range(60):
        prompt = rng.integers(0, 4, size=rng.integers(1, 12)).tolist()
        cont = rng.integers(0, 4, size=rng.integers(1, 25)).tolist()
        lo = int(rng.integers(1, 3))
        hi = lo + int(rng.integers(0, 3))
        mml = None if trial % 2 else len(prompt) + int(rng.integers(2, 30))
        proposals, lengths = replay_proposals(prompt, cont, 4, lo, hi, rules, mml)
        for t in range(len(cont)):
            expected = [] if t == 0 else propose(prompt + cont[:t], 4, lo, hi, rules, mml)
            assert proposals[t, : lengths[t]].tolist() == expected, (trial, t)


@pytest.mark.parametrize("eos", [None, 4])
def test_walk_along_loop_output_reproduces_loop_counters(eos):
    """The loop's n-gram counters are a function of the text it emits: a one-hot draft is accepted iff the
    emitted token equals it. Replaying lookup + matched prefixes over that text (the estimate's walk)
    gives exactly the loop's steps, drafts and drafted tokens at every T, and its accepted tokens at T = 0,
    where the drafts of the last step that run past the text (vLLM drafts k whatever the budget left, and
    counts the accepted prefix before cutting the output) are accepted iff they are the target's argmax.
    With an EOS (token 4) texts stop before the budget of 24 tokens and the last step drafts past the EOS."""
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
    budget, ended_early, past_end = 24, 0, 0
    for seed in range(20):
        for temperature in (0.0, 0.7, 1.0):
            prompt = [0, 1, 2, 0, 1, 3, 0]
            gen = torch.Generator().manual_seed(seed)
            tokens, counters = speculative_decode(prompt, TableSource(table), None, "ngram", 3, temperature, budget,
                                                  eos, gen, lookup_min=1, lookup_max=2, rules=V032)
            ended_early += eos is not None and len(tokens) < budget
            proposals, lengths = replay_proposals(prompt, tokens, 3, 1, 2, V032)
            matched = matched_prefix(proposals, lengths, tokens)
            indicator = np.zeros((1, len(tokens), 3))
            for t, m in enumerate(matched):
                indicator[0, t, :m] = 1.0
                # greedy acceptance past the text: the target's argmax after the proposal so far
                if t + m >= len(tokens) and m < lengths[t]:
                    past_end += 1
                    last = tokens[t + m - 1] if m else tokens[t - 1]
                    for i in range(m, int(lengths[t])):
                        if int(np.argmax(table[(last,)])) != proposals[t, i]:
                            break
                        indicator[0, t, i] = 1.0
                        last = int(proposals[t, i])
            replay = replay_steps(indicator, lengths, 3, matched, prefill_plain=True)
            assert (replay.steps[0], replay.drafts[0], replay.draft_tokens[0]) == (
                counters.steps, counters.drafts, counters.draft_tokens), (seed, temperature)
            if temperature == 0.0:
                assert replay.accepted[0] == counters.accepted, seed
    assert past_end >= 10
    if eos is not None:
        assert ended_early >= 20, ended_early


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
    standard errors of the paired difference (about 0.0125 here; a false alarm once in ~16000 seeds, and the
    seeds are fixed) and within 0.03 absolute.

    Texts stop at an EOS (about 1 in 4 tokens; a few reach the 12-token budget), so the end of the text
    matters: the loop drafts past the EOS and the budget (as vLLM does), and the estimate must run the
    target over those proposals (the pipeline's branches) to count them."""
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
        rows = [torch.as_tensor(table[[prompt[-1]] + y[:-1]], dtype=torch.float32) for y in texts]
        loop = []
        for seed in range(n):
            gen = torch.Generator().manual_seed(1000 + seed)
            _, c = speculative_decode(prompt, loop_model, None, "ngram", k, temperature, budget, eos, gen,
                                      lookup_min=1, lookup_max=2, rules=V032)
            loop.append((c.accepted, c.draft_tokens))
        recs = _ngram_records(model, rows, [prompt] * n, texts, settings, [temperature], "cpu", vocab)
        records = [{"id": str(i), "category": "toy", "contexts": [
            {"temperature": temperature, "temps": [j], "continuation": y, "pairs": {}, "ngram": {"deployed": r}}]}
            for i, (y, r) in enumerate(zip(texts, recs))]
        est = request_counters(records, "ngram", "argmax_draft", settings, temperature, k)
        right = compare_ratios([est[str(i)][0] for i in range(n)], [est[str(i)][1] for i in range(n)],
                               [a for a, _ in loop], [d for _, d in loop])
        assert right.difference_stderr < 0.015, right  # ~0.0125: the prefill step drafts nothing
        assert abs(right.difference) <= 4 * right.difference_stderr and abs(right.difference) <= 0.03, right
