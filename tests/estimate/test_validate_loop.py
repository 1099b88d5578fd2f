"""The speculative loop is lossless: chi-square of its first two tokens against the exact target law.

First-order tables over a 6-token vocabulary give the exact joint p_T(x1) p_T(x2 | x1). Under a correct
loop the test rejects with probability 0.001 (the stated false-alarm rate); the same test must reject a
loop with the classic bug of resampling from p instead of norm(max(0, p - q)) after a rejection.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from specwise.estimate import validate  # noqa: E402
from specwise.estimate.acceptance import Truncation, lossless_acceptance  # noqa: E402
from specwise.estimate.validate import TableSource, check_output_distribution, speculative_decode  # noqa: E402

V = 6


def _tables(seed: int):
    rng = np.random.default_rng(seed)
    target = {(x,): rng.normal(scale=1.5, size=V) for x in range(V)}
    draft = {(x,): target[(x,)] + rng.normal(scale=1.0, size=V) for x in range(V)}
    return target, draft


@pytest.mark.parametrize("verification", ["lossless", "argmax_draft"])
@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_loop_output_follows_target(verification, temperature):
    target, draft = _tables(3)
    check = check_output_distribution(target, draft, 0, verification, temperature, samples=3000, seed=11)
    assert check.passed, check


def test_ngram_loop_output_follows_target():
    target, _ = _tables(4)
    # prefix 0 1 0 2 0: the lookup proposes 1 or 2 after 0 (an n-gram match), exercising verification
    check = check_output_distribution(target, None, 0, "ngram", 1.0, samples=3000, seed=5,
                                      lookup_prefix=[0, 1, 0, 2])
    assert check.passed, check


def test_check_detects_a_lossy_loop(monkeypatch):
    target, draft = _tables(3)
    monkeypatch.setattr(validate, "_residual", lambda p, q: p)  # resample from p: biased toward the draft
    check = check_output_distribution(target, draft, 0, "lossless", 1.0, samples=3000, seed=11)
    assert not check.passed and check.p_value < 1e-6


def test_greedy_loop_reproduces_target_argmax_and_counts():
    target, draft = _tables(5)
    gen = torch.Generator().manual_seed(0)
    tokens, counters = speculative_decode([0], TableSource(target), TableSource(draft), "lossless", 3, 0.0, 12,
                                          None, gen)
    expected, x = [], 0
    for _ in range(12):
        x = int(np.argmax(target[(x,)]))
        expected.append(x)
    assert tokens == expected
    assert counters.accepted + counters.steps == 12  # each step emits accepted drafts + one token
    assert counters.draft_tokens >= counters.accepted


def test_ratio_standard_error_by_hand():
    from specwise.estimate.validate import ratio_stderr

    # drafts of 2 tokens accepting 0, 2, 1, 1: rate 0.5, residuals -1, 1, 0, 0
    accepted, drafted = [0, 2, 1, 1], [2, 2, 2, 2]
    se = ratio_stderr(sum(accepted), sum(drafted), sum(a * a for a in accepted), sum(d * d for d in drafted),
                      sum(a * d for a, d in zip(accepted, drafted)), len(accepted))
    assert se == pytest.approx((2 * 4 / 3) ** 0.5 / 8)
    assert ratio_stderr(4, 8, 4, 16, 8, 4) == pytest.approx(0.0)  # every draft accepts exactly 1 of 2


def test_paired_comparison_by_hand():
    from specwise.estimate.validate import compare_ratios

    # two requests drafting 10 tokens on each side: estimate 6/20 = 0.3 (4 and 2 accepted), loop 8/20 = 0.4
    # (5 and 3): influences (a - r d) / sum d: u = w = (0.05, -0.05), so the paired difference has no spread left
    c = compare_ratios([4, 2], [10, 10], [5, 3], [10, 10])
    assert (c.estimated, c.measured, c.difference) == pytest.approx((0.3, 0.4, -0.1))
    assert c.estimated_stderr == pytest.approx(0.1)  # sqrt(n/(n-1) * sum u^2) = sqrt(2 * 0.005)
    assert c.difference_stderr == pytest.approx(0.0)
    assert c.compatible is False and c.ci_within(0.05) is False
    # opposite per-request deviations: the difference is 0 but uncertain by the two sides' spreads added
    c = compare_ratios([4, 2], [10, 10], [2, 4], [10, 10])
    assert c.difference == pytest.approx(0.0)
    assert c.difference_stderr == pytest.approx(0.2)  # u - w = (0.1, -0.1): sqrt(2 * 0.02)
    assert c.compatible is True and c.ci_within(0.05) is False and c.ci_within(0.6) is True
    assert compare_ratios([0, 0], [0, 0], [1, 1], [2, 2]) is None  # nothing drafted on one side


def test_one_sided_standard_error_when_no_pairing_is_possible():
    """A validation row keeps the standard error of each side on its own (n-gram rows at T > 0 whose other
    side drafted nothing, or a loop row resumed without per-request counters)."""
    from specwise.estimate.runner import _measured_stderr
    from specwise.estimate.validate import compare_ratios, request_ratio_stderr

    assert request_ratio_stderr([4, 2], [10, 10]) == pytest.approx(compare_ratios([4, 2], [10, 10], [5, 3],
                                                                                  [10, 10]).estimated_stderr)
    assert request_ratio_stderr([4, 2], [10, 10]) == pytest.approx(0.1)
    assert request_ratio_stderr([3], [10]) is None and request_ratio_stderr([0, 0], [0, 0]) is None
    assert _measured_stderr({"stderr": 0.0123456}) == 0.01235
    assert _measured_stderr({"request_accepted": [4, 2], "request_drafted": [10, 10]}) == pytest.approx(0.1)
    assert _measured_stderr({}) is None


# ------------------------------------------------------------------------------------------------
# top-k / top-p: the loop samples as vLLM does (target truncated, draft by temperature only)
# ------------------------------------------------------------------------------------------------

TRUNC = Truncation(top_k=4, top_p=0.8)


@pytest.mark.parametrize("verification", ["lossless", "argmax_draft"])
def test_truncated_loop_output_follows_truncated_target(verification):
    target, draft = _tables(3)
    check = check_output_distribution(target, draft, 0, verification, 1.0, samples=3000, seed=11,
                                      truncation=TRUNC)
    assert check.passed, check


def test_truncated_ngram_loop_output_follows_truncated_target():
    target, _ = _tables(4)
    check = check_output_distribution(target, None, 0, "ngram", 1.0, samples=3000, seed=5,
                                      lookup_prefix=[0, 1, 0, 2], truncation=TRUNC)
    assert check.passed, check


def test_check_detects_a_loop_that_ignores_truncation(monkeypatch):
    target, draft = _tables(3)
    real = validate.speculative_decode

    def untruncated(*args, truncation=None, **kwargs):
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "speculative_decode", untruncated)
    check = check_output_distribution(target, draft, 0, "lossless", 1.0, samples=3000, seed=11,
                                      truncation=TRUNC)
    assert not check.passed and check.p_value < 1e-6


# p = [0.45, 0.3, 0.15, 0.1], q = [0.1, 0.2, 0.3, 0.4], top_p 0.7: p_trunc = [0.6, 0.4, 0, 0].
# Lossless acceptance sum min(p_trunc, q) = 0.3 (untruncated 0.55, draft side truncated 0.25, both 0);
# the argmax draft proposes token 3, outside the target's set: acceptance 0 (untruncated 0.1).
P4, Q4 = np.log([0.45, 0.3, 0.15, 0.1]), np.log([0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("verification,expected", [("lossless", 0.3), ("argmax_draft", 0.0)])
def test_truncated_loop_acceptance_matches_the_target_side_formula(verification, expected):
    target = {(x,): P4 for x in range(4)}
    draft = {(x,): Q4 for x in range(4)}
    trunc = Truncation(top_p=0.7)
    assert lossless_acceptance(P4[None], Q4[None], [1.0], trunc)[0, 0] == pytest.approx(0.3)
    gen = torch.Generator().manual_seed(7)
    runs = 4000
    accepted = 0
    for _ in range(runs):
        _, counters = speculative_decode([0], TableSource(target), TableSource(draft), verification, 1, 1.0,
                                         2, None, gen, truncation=trunc)
        assert counters.draft_tokens == 1
        accepted += counters.accepted
    rate = accepted / runs
    # 4 standard errors (0.029 at 0.3): far from 0.25, the value if the draft side were truncated
    assert abs(rate - expected) <= 4 * (max(expected * (1 - expected), 1e-9) / runs) ** 0.5 + 1e-9, rate
