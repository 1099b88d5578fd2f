"""/metrics text under hostile input: a snapshot (with notes for skipped samples) or MetricsUnavailable, never
another exception (issue 13: a non-integer ``position`` label ended the bench with a ValueError)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from specwise.metrics.adapters import delta, kv_cache_capacity_tokens, sample_gauges
from specwise.metrics.prometheus import MetricsUnavailable, parse_metrics_text
from tests.hostile import HUGE_DIGITS, mutate_text

FIX = Path(__file__).parent / "fixtures"
BEFORE = parse_metrics_text((FIX / "vllm_v1_before.prom").read_text(), taken_at=0.0)
AFTER_TEXT = (FIX / "vllm_v1_after.prom").read_text()


@pytest.mark.parametrize("label", ["x", "-1", "1.5", HUGE_DIGITS, ""])
def test_a_non_integer_position_is_skipped_with_a_note(label):
    text = AFTER_TEXT.replace('position="1"', f'position="{label}"')
    assert text != AFTER_TEXT
    d = delta(BEFORE, parse_metrics_text(text, taken_at=10.0))
    assert d.spec is not None and d.spec.per_position is not None
    assert any("unreadable position label" in n for n in d.spec.notes), d.spec.notes
    clean = delta(BEFORE, parse_metrics_text(AFTER_TEXT, taken_at=10.0))
    assert len(d.spec.per_position) == len(clean.spec.per_position) - 1  # only that series was dropped


@pytest.mark.parametrize("value", [HUGE_DIGITS, "NaN", "+Inf"])
def test_a_counter_that_is_not_a_finite_count_is_skipped_with_a_note(value):
    name = "vllm:spec_decode_num_drafts_total"
    lines = [line for line in AFTER_TEXT.splitlines() if line.startswith(name)]
    assert lines
    text = AFTER_TEXT.replace(lines[0], lines[0].rsplit(" ", 1)[0] + " " + value)
    snap = parse_metrics_text(text, taken_at=10.0)
    assert any(n.startswith(name) and "not a finite count" in n for n in snap.notes)
    d = delta(BEFORE, snap)
    assert any("not a finite count" in n for n in d.notes)
    d.model_dump_json()


def test_a_huge_timestamp_is_metrics_unavailable():
    with pytest.raises(MetricsUnavailable):
        parse_metrics_text(f"# TYPE g gauge\ng 1 {HUGE_DIGITS}\n")


_TOKENS = ["{", "}", '"', "=", ",", " ", "\n", "#", "TYPE", "NaN", "+Inf", "1e400", HUGE_DIGITS, 'position="x"',
           'position="-1"', "\\", "\x00", "é", "0", "-5", "_total", "counter", "gauge"]


def test_generated_expositions_parse_or_are_unavailable():
    rng = random.Random(9)
    bases = [AFTER_TEXT, (FIX / "vllm_v0_after.prom").read_text(), (FIX / "sglang.prom").read_text(),
             (FIX / "vllm_v1_083.prom").read_text()]
    start = time.monotonic()
    parsed = 0
    for i in range(1200):
        text = mutate_text(rng, rng.choice(bases), _TOKENS, edits=6)
        try:
            snap = parse_metrics_text(text, taken_at=10.0)
        except MetricsUnavailable:
            continue
        except Exception as exc:
            raise AssertionError(f"case {i}: {type(exc).__name__}: {exc}\n{text[:3000]!r}") from exc
        try:
            d = delta(BEFORE, snap, k=rng.choice([None, 3]))
            sample_gauges(snap, 1.0)
            kv_cache_capacity_tokens(snap)
            d.model_dump_json()
        except Exception as exc:
            raise AssertionError(f"case {i}: {type(exc).__name__}: {exc}\n{text[:3000]!r}") from exc
        parsed += 1
    assert parsed > 200  # the readers past the parser were exercised
    assert time.monotonic() - start < 30
