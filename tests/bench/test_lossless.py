import numpy as np

from specwise.bench.lossless import (
    LosslessPlan,
    LosslessSamples,
    compare_lossless,
    permutation_tv_test,
)


def _samples(rng, probs, n, length=3):
    return [list(rng.choice(len(probs), size=length, p=probs)) for _ in range(n)]


def test_same_distribution_passes_at_stated_rate_and_shifted_fails():
    plan = LosslessPlan(alpha=0.01, permutations=500)
    rng = np.random.default_rng(0)
    p = [0.5, 0.3, 0.2]
    base = LosslessSamples(greedy={"a": "x y"}, sampled={"a": _samples(rng, p, 150), "b": _samples(rng, p, 150)})
    same = LosslessSamples(greedy={"a": "x y"}, sampled={"a": _samples(rng, p, 150), "b": _samples(rng, p, 150)})
    ok = compare_lossless(base, same, plan)
    assert ok.passed is True and ok.greedy_prompts == 1 and ok.samples_per_arm == 150
    shifted = LosslessSamples(greedy={"a": "x y"},
                              sampled={"a": _samples(rng, [0.1, 0.2, 0.7], 150), "b": _samples(rng, p, 150)})
    bad = compare_lossless(base, shifted, plan)
    assert bad.passed is False and "differ" in bad.detail and bad.worst_total_variation > 0.3


def test_greedy_mismatch_fails_with_first_difference():
    plan = LosslessPlan(sampled_prompts=0)
    check = compare_lossless(LosslessSamples(greedy={"p": "The cat sat on the mat."}),
                             LosslessSamples(greedy={"p": "The cat sat on a hat."}), plan)
    assert check.passed is False and check.greedy_mismatches == 1
    assert "character 15" in check.greedy_examples[0]


def test_false_alarm_rate_of_the_permutation_test():
    # Under the null, p-values are (super-)uniform: P(p < 0.05) <= ~0.05.
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(60):
        a = list(rng.choice(4, size=60, p=[0.4, 0.3, 0.2, 0.1]))
        b = list(rng.choice(4, size=60, p=[0.4, 0.3, 0.2, 0.1]))
        hits += permutation_tv_test(a, b, permutations=200, seed=i)[1] < 0.05
    assert hits <= 8


def test_nothing_comparable_is_not_a_pass():
    check = compare_lossless(LosslessSamples(greedy_errors=4), LosslessSamples(greedy_errors=4), LosslessPlan())
    assert check.passed is None
