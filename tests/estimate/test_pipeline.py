"""Pipeline bookkeeping that needs no model: settings of a resumed run must match, top-k/top-p included."""

import pytest

from specwise.errors import UserError
from specwise.estimate.acceptance import Truncation
from specwise.estimate.pipeline import _check_meta, truncation_of
from specwise.schemas.estimate import EstimateSettings


def _settings(**overrides):
    base = dict(target="t", methods=["ngram"], temperatures=[0.0, 1.0], k_max=3, max_new_tokens=8,
                context_temperatures=[0.0, 1.0], prompt_lookup_min=1, prompt_lookup_max=2, seed=0,
                prompts="p")
    return EstimateSettings(**{**base, **overrides})


def test_resume_refuses_a_different_top_p_or_top_k(tmp_path):
    _check_meta(tmp_path, _settings(top_p=0.9, top_k=50), resume=False)
    assert _check_meta(tmp_path, _settings(top_p=0.9, top_k=50), resume=True) == set()
    for changed in (_settings(top_p=0.8, top_k=50), _settings(top_p=0.9), _settings(top_k=50)):
        with pytest.raises(UserError, match="different settings"):
            _check_meta(tmp_path, changed, resume=True)


def test_settings_written_before_top_p_existed_resume_as_untruncated(tmp_path):
    # a settings.json from an older run has no top_p/top_k: it reads back as "off", the same as now
    old = _settings().model_dump_json(exclude={"top_p", "top_k"})
    (tmp_path / "settings.json").write_text(old)
    (tmp_path / "requests.jsonl").write_text("")
    assert _check_meta(tmp_path, _settings(), resume=True) == set()
    assert truncation_of(_settings()) == Truncation() and not Truncation().active
    assert truncation_of(_settings(top_k=5)).active and truncation_of(_settings(top_p=0.95)).active
