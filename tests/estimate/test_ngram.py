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
