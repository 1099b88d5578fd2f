"""Startup logs under hostile input: parsing never raises; an implausible number (400 digits) drops its line
with a note instead of an OverflowError (issue 13), and ``plan --check-log`` still compares the rest."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from specwise.cli.main import main
from specwise.plan.memory import plan_memory
from specwise.plan.startup_log import compare_with_log, parse_startup_log
from specwise.schemas.plan import PlanRequest
from tests.hostile import HUGE_DIGITS, mutate_text

FIXTURES = Path(__file__).parent / "fixtures"
LOGS = sorted(FIXTURES.glob("*.log"))

LINES = [
    "Model loading took {n} GiB and 5.1 seconds", "Loading model weights took {n} GB",
    "Available KV cache memory: {n} GiB", "GPU KV cache size: {n} tokens", "CPU KV cache size: {n} tokens",
    "Explicitly set ({n}/{n}) GiB for KV cache on node 0", "# GPU blocks: {n}, # CPU blocks: 2048",
    "Maximum concurrency for {n} tokens per request: {n}x", "Graph capturing finished in 13 secs, took {n} GiB",
    "torch peak memory increase: {n}GiB", "the rest of the memory reserved for KV Cache is {n}GiB",
]


@pytest.mark.parametrize("line", LINES)
def test_400_digit_numbers_drop_the_line_with_a_note(line):
    text = "INFO Available KV cache memory: 1.5 GiB\n" + line.format(n=HUGE_DIGITS) + "\n"
    facts = parse_startup_log(text)
    assert facts.available_kv_cache_gib == 1.5  # the sane line is kept
    assert len(facts.notes) == 1 and "line 2" in facts.notes[0] and "not a plausible size" in facts.notes[0]
    assert facts.lines_matched == 1


def test_plan_check_log_with_400_digit_numbers_exits_0_with_a_note(tmp_path, capsys):
    log = tmp_path / "server.log"
    log.write_text(f"Model loading took {HUGE_DIGITS} GiB\nGPU KV cache size: {HUGE_DIGITS} tokens\n"
                   "Available KV cache memory: 1.5 GiB\n")
    main(["plan", "--target", str(FIXTURES / "tiny-llama"), "--gpu", "H100", "--check-log", str(log)])
    out = capsys.readouterr().out
    assert "KV cache memory" in out and "not a plausible size" in out


_TOKENS = ["9", "0", ",", ".", " ", HUGE_DIGITS, "1e400", "nan", "GiB", "tokens", "x", "\n", "(", "/", ")", "-", "é"]


def test_generated_logs_parse_and_compare_without_raising():
    rng = random.Random(400)
    texts = [p.read_text() for p in LOGS]
    plan = plan_memory(PlanRequest(target=str(FIXTURES / "tiny-llama"), gpu="H100"))
    start = time.monotonic()
    matched = 0
    for i in range(400):
        base = rng.choice(texts + ["\n".join(line.format(n="1,234.5") for line in LINES)])
        text = mutate_text(rng, base, _TOKENS, edits=12)
        try:
            facts = parse_startup_log(text)
            rows = compare_with_log(plan, facts)
            facts.model_dump_json()
        except Exception as exc:
            raise AssertionError(f"case {i}: {type(exc).__name__}: {exc}\n{text[:3000]!r}") from exc
        matched += facts.lines_matched > 0
        for row in rows:
            assert row.logged == row.logged  # no NaN from a logged value
    assert matched > 300  # most mutated logs still carry facts: the parser was exercised
    assert time.monotonic() - start < 30
