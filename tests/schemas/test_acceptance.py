import pytest

from specwise.schemas.acceptance import (
    AcceptanceClass,
    conditional_from_unconditional,
    mean_acceptance_length,
    unconditional_from_conditional,
)


def test_iid_acceptance_length_matches_leviathan_table():
    # Leviathan Eq. (1): E[L] = (1 - a^(k+1)) / (1 - a); table in theory-and-calibration.md 1.2
    assert mean_acceptance_length([0.7], 3) == pytest.approx(2.533, abs=1e-3)
    assert mean_acceptance_length([0.8], 5) == pytest.approx(3.69, abs=5e-3)


def test_conditional_unconditional_roundtrip():
    cond = [0.6, 0.6, 0.65, 0.69, 0.73]
    unc = unconditional_from_conditional(cond)
    assert unc[0] == pytest.approx(0.6)
    assert unc[1] == pytest.approx(0.36)
    assert conditional_from_unconditional(unc) == pytest.approx(cond)


def test_ngram_mixture_scales_extra_tokens_only():
    c = AcceptanceClass(conditional=[0.9], match_probability=0.2)
    # a matched step gives E[L]=1+0.9+0.81+0.729=3.439 at k=3; unmatched gives 1
    assert c.mean_acceptance_length(3) == pytest.approx(1 + 0.2 * 2.439)


def test_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError):
        AcceptanceClass(conditional=[1.2])
