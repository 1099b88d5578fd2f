"""Top-k / top-p in the acceptance math, on distributions small enough to work by hand.

vLLM truncates the target's p_T only (its probabilistic draft uses the temperature alone, and a greedy or
n-gram draft is one-hot), so each case below has four different answers: truncation ignored, applied to
the target (right), to the draft, or to both. The tests pin the right one.
"""

import numpy as np
import pytest

from specwise.estimate.acceptance import (
    Truncation,
    argmax_draft_acceptance,
    lossless_acceptance,
    proposal_acceptance,
    truncated_probs,
)

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.1, 0.3, 0.6])


def _log(x):
    return np.log(np.asarray(x, dtype=np.float64))[None]


def test_top_p_keeps_the_smallest_head_reaching_p():
    # masses above each token: 0, 0.5, 0.8 -> with top_p 0.7 the third token goes
    assert truncated_probs(_log(P), 1.0, Truncation(top_p=0.7))[0] == pytest.approx([0.625, 0.375, 0.0])
    # the most likely token always survives, however small top_p is
    assert truncated_probs(_log(P), 1.0, Truncation(top_p=0.01))[0] == pytest.approx([1.0, 0.0, 0.0])


def test_top_k_keeps_ties_at_the_kth_logit():
    tied = np.array([[1.0, 1.0, 0.0]])
    assert truncated_probs(tied, 1.0, Truncation(top_k=1))[0] == pytest.approx([0.5, 0.5, 0.0])
    assert truncated_probs(_log(P), 1.0, Truncation(top_k=2))[0] == pytest.approx([0.625, 0.375, 0.0])


def test_top_p_applies_to_the_top_k_renormalised_distribution():
    four = [0.4, 0.3, 0.2, 0.1]
    # top_k 3 -> 4/9, 3/9, 2/9; mass above the third is 7/9 >= 0.75, so top_p drops it. Had top_p seen the
    # untruncated masses (0.7 above the third token) it would have kept it.
    out = truncated_probs(_log(four), 1.0, Truncation(top_k=3, top_p=0.75))[0]
    assert out == pytest.approx([4 / 7, 3 / 7, 0.0, 0.0])


def test_truncation_follows_temperature():
    # T = 0.5: p^2 renormalised = [25, 9, 4] / 38; mass above the third 34/38 >= 0.85 -> dropped. At T = 1
    # the mass above it is only 0.8, so truncating before the temperature would keep it.
    out = truncated_probs(_log(P), 0.5, Truncation(top_p=0.85))[0]
    assert out == pytest.approx([25 / 34, 9 / 34, 0.0])
    second = proposal_acceptance(_log(P), np.array([1]), [0.5], Truncation(top_p=0.85))[0, 0]
    assert second == pytest.approx(9 / 34)


def test_lossless_acceptance_truncates_the_target_side_only():
    trunc = Truncation(top_p=0.7)  # p -> [0.625, 0.375, 0]; q would be -> [0, 1/3, 2/3]
    beta = lossless_acceptance(_log(P), _log(Q), [1.0], trunc)[0, 0]
    assert beta == pytest.approx(0.1 + 0.3)  # sum min(p_trunc, q)
    # the alternatives this must not be
    assert beta != pytest.approx(0.1 + 0.3 + 0.2)  # truncation ignored: sum min(p, q)
    assert beta != pytest.approx(0.3 + 0.2)  # draft side truncated: sum min(p, q_trunc)
    assert beta != pytest.approx(1 / 3)  # both sides: sum min(p_trunc, q_trunc)
    assert lossless_acceptance(_log(P), _log(Q), [1.0])[0, 0] == pytest.approx(0.6)


def test_argmax_draft_outside_the_target_set_is_always_rejected():
    # argmax q is token 2, which top_p 0.7 (or top_k 2) removes from the target: p_trunc(2) = 0
    assert argmax_draft_acceptance(_log(P), _log(Q), [1.0], Truncation(top_p=0.7))[0, 0] == 0.0
    assert argmax_draft_acceptance(_log(P), _log(Q), [1.0], Truncation(top_k=2))[0, 0] == 0.0
    assert argmax_draft_acceptance(_log(P), _log(Q), [1.0])[0, 0] == pytest.approx(0.2)
    # a draft that proposes the target's argmax gains: p_trunc(0) = 0.625 > 0.5
    first = proposal_acceptance(_log(P), np.array([0]), [1.0], Truncation(top_p=0.7))[0, 0]
    assert first == pytest.approx(0.625)


def test_greedy_temperature_ignores_truncation():
    trunc = Truncation(top_k=1, top_p=0.1)
    assert lossless_acceptance(_log(P), _log(Q), [0.0], trunc)[0, 0] == 0.0
    assert proposal_acceptance(_log(P), np.array([0]), [0.0], trunc)[0, 0] == 1.0


def test_torch_and_numpy_truncation_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    zp, zq = rng.normal(scale=2.0, size=(9, 64)), rng.normal(scale=2.0, size=(9, 64))
    temps = [0.0, 0.5, 1.0]
    for trunc in (Truncation(top_p=0.9), Truncation(top_k=5), Truncation(top_k=20, top_p=0.8)):
        a = lossless_acceptance(zp, zq, temps, trunc)
        b = lossless_acceptance(torch.tensor(zp), torch.tensor(zq), temps, trunc)
        assert a == pytest.approx(b, abs=1e-5)
        c = argmax_draft_acceptance(zp, zq, temps, trunc)
        d = argmax_draft_acceptance(torch.tensor(zp), torch.tensor(zq), temps, trunc)
        assert c == pytest.approx(d, abs=1e-5)
        kept = (truncated_probs(zp, 1.0, trunc) > 0).sum(axis=-1)
        assert (kept >= 1).all() and (trunc.top_k == 0 or (kept <= trunc.top_k).all())
