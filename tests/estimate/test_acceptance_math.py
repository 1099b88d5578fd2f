"""Acceptance math on hand-made distributions, with exact expected values."""

import numpy as np
import pytest

from specwise.estimate.acceptance import (
    RequestChain,
    argmax_draft_acceptance,
    chain_from_positions,
    iid_alpha_from_length,
    lossless_acceptance,
    recommend_k,
    replay_steps,
    speedup_batch1,
    summarize,
)

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])


def test_lossless_acceptance_is_one_minus_total_variation():
    betas = lossless_acceptance(np.log(P)[None], np.log(Q)[None], [0.0, 0.5, 1.0])
    # T=1: sum min = 0.2 + 0.3 + 0.2; T=0.5: p^2 and q^2 renormalised (both sum to 0.38)
    assert betas[0, 0] == 0.0  # argmax p = 0, argmax q = 2
    assert betas[1, 0] == pytest.approx((0.04 + 0.09 + 0.04) / 0.38)
    assert betas[2, 0] == pytest.approx(0.7)


def test_argmax_draft_acceptance_is_target_probability_of_draft_argmax():
    betas = argmax_draft_acceptance(np.log(P)[None], np.log(Q)[None], [0.0, 0.5, 1.0])
    assert betas[:, 0] == pytest.approx([0.0, 0.04 / 0.38, 0.2])
    same = argmax_draft_acceptance(np.log(P)[None], np.log(P)[None], [0.0, 1.0])
    assert same[:, 0] == pytest.approx([1.0, 0.5])  # an identical greedy draft still loses at T>0


def test_torch_and_numpy_paths_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    zp, zq = rng.normal(size=(7, 50)), rng.normal(size=(7, 50))
    temps = [0.0, 0.3, 1.0]
    a = lossless_acceptance(zp, zq, temps)
    b = lossless_acceptance(torch.tensor(zp), torch.tensor(zq), temps)
    assert a == pytest.approx(b, abs=1e-6)
    c = argmax_draft_acceptance(zp, zq, temps)
    d = argmax_draft_acceptance(torch.tensor(zp), torch.tensor(zq), temps)
    assert c == pytest.approx(d, abs=1e-6)


def test_replay_steps_exact_counters_on_three_positions():
    # worked by hand in the comments of replay_steps: betas 0.5, 0.8, 0.3 with k = 2
    chain, lengths = chain_from_positions(np.array([[0.5, 0.8, 0.3]]), 2)
    assert list(lengths) == [2, 1, 0]
    c = replay_steps(chain, lengths, 2)
    assert c.steps[0] == pytest.approx(1.7)
    assert c.drafts[0] == pytest.approx(1.5)
    assert c.draft_tokens[0] == pytest.approx(2.5)
    assert c.accepted[0] == pytest.approx(1.3)
    assert c.accepted_per_pos[0] == pytest.approx([0.9, 0.4])
    # every continuation token is emitted exactly once
    assert c.accepted[0] + c.steps[0] == pytest.approx(3.0)


def test_replay_matches_monte_carlo_of_the_step_process():
    rng = np.random.default_rng(1)
    betas = rng.uniform(0.2, 0.95, size=40)
    chain, lengths = chain_from_positions(betas[None], 4)
    exact = replay_steps(chain, lengths, 4)
    accepted = drafted = steps = 0
    for _ in range(20000):
        t = 0
        while t < len(betas):
            steps += 1
            kk = int(min(4, lengths[t]))
            m = 0
            while m < kk and rng.random() < betas[t + m]:
                m += 1
            accepted += m
            drafted += kk
            t += m + 1
    assert accepted / drafted == pytest.approx(exact.acceptance_rate()[0], abs=0.005)
    assert steps / 20000 == pytest.approx(exact.steps[0], rel=0.01)


def test_constant_acceptance_reproduces_leviathan_expected_length():
    # far from the sequence end, alpha i.i.d.: E[L] = (1 - a^(k+1)) / (1 - a) (theory §1.2)
    chain, lengths = chain_from_positions(np.full((1, 5000), 0.7), 3)
    c = replay_steps(chain, lengths, 3)
    assert c.mean_acceptance_length()[0] == pytest.approx(2.533, abs=2e-3)
    assert c.acceptance_rate()[0] == pytest.approx((2.533 - 1) / 3, abs=1e-3)
    assert c.per_position()[0] == pytest.approx([0.7, 0.49, 0.343], abs=2e-3)


def test_no_proposal_steps_count_as_steps_but_not_drafts():
    chain = np.zeros((1, 5, 2))
    chain[0, 0, :2] = [1.0, 1.0]
    lengths = np.array([2, 0, 0, 0, 0])
    c = replay_steps(chain, lengths, 2)
    # step 0 accepts both drafts (3 tokens); position 3 finds no match; position 4 is the forced last step
    assert c.steps[0] == pytest.approx(3.0)
    assert c.drafts[0] == pytest.approx(1.0)
    assert c.forced_plain_steps[0] == pytest.approx(1.0)
    assert c.match_probability()[0] == pytest.approx(0.5)  # 1 of the 2 steps that could propose
    assert c.tokens_per_step()[0] == pytest.approx(5 / 3)


def test_per_position_ignores_end_truncated_steps():
    # constant 0.5, k = 3: steps near the end draft fewer tokens, which would drag a_2 down if counted
    chain, lengths = chain_from_positions(np.full((1, 12), 0.5), 3)
    c = replay_steps(chain, lengths, 3)
    assert c.per_position()[0] == pytest.approx([0.5, 0.25, 0.125])
    assert c.match_probability()[0] == pytest.approx(1.0)


def test_speedup_and_recommended_k():
    chain, lengths = chain_from_positions(np.full((1, 4000), 0.8), 8)
    speedups = [speedup_batch1(replay_steps(chain, lengths, k), 0.1)[0] for k in range(1, 9)]
    # Leviathan §1.4 table: alpha 0.8, c 0.1 -> k* = 6, 2.47x (k_max 8 allows it)
    assert recommend_k(speedups) == 6
    assert max(speedups) == pytest.approx(2.47, abs=0.02)
    assert recommend_k([0.9, 0.8]) == 0  # nothing beats plain decoding


def test_summarize_pools_ratio_of_sums_and_percentiles():
    a = RequestChain("a", "code", *chain_from_positions(np.full((1, 200), 0.9), 2))
    b = RequestChain("b", "chat", *chain_from_positions(np.full((1, 200), 0.3), 2))
    groups = summarize([a, b], 2, 1)
    assert set(groups) == {"all", "code", "chat"}
    rate_a = groups["code"].counters_by_k[1].acceptance_rate()[0]
    rate_b = groups["chat"].counters_by_k[1].acceptance_rate()[0]
    pooled = groups["all"].counters_by_k[1]
    assert rate_a > 0.8 and rate_b < 0.3
    assert pooled.accepted[0] == pytest.approx(
        groups["code"].counters_by_k[1].accepted[0] + groups["chat"].counters_by_k[1].accepted[0])
    assert groups["all"].rate_percentiles(2, 50)[0] == pytest.approx((rate_a + rate_b) / 2)
    assert groups["all"].heterogeneity()[0] > 1.0


def test_iid_alpha_inverts_expected_length():
    # theory §1.6: tau = 2.25 at k = 3 -> alpha_eff 0.62
    assert iid_alpha_from_length(2.25, 3) == pytest.approx(0.62, abs=0.005)
