"""Numeric flags of plan, simulate, estimate and catalog under hostile values, through the real CLI entry point
(``specwise.cli.main.main``, in process): every case exits 2 with a one-line error (or click's usage error), or
is accepted, and an accepted value is inside the range this test states independently (issue 13: inf, nan,
negatives, 1e400, 400 digits; ``--qps 1e-300`` hung, ``--num-requests 1e9`` exhausted memory).

Simulate and estimate stop right after their inputs are accepted (the sweep / model loading is replaced by a
sentinel), so the test measures validation, not the simulator; plan runs whole (it takes milliseconds).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from specwise.cli.main import main
from specwise.schemas.limits import MAX_SIM_REQUESTS
from tests.hostile import NUMBER_TEXTS, assert_one_line

TINY = str(Path(__file__).parents[1] / "plan" / "fixtures" / "tiny-llama")


class Accepted(Exception):
    """Raised in place of the expensive stage: every input was accepted."""


@pytest.fixture
def stop_after_validation(monkeypatch):
    def accept(*_args, **_kwargs):
        raise Accepted

    import specwise.estimate.models
    import specwise.simulate.sweep

    monkeypatch.setattr(specwise.simulate.sweep, "run_sweep", accept)
    monkeypatch.setattr(specwise.estimate.models, "require_torch", accept)


def run_cli(argv: list[str], capsys) -> tuple[str, str]:
    """('accepted' | 'refused', stderr). Anything else (a traceback) fails the test with the argv."""
    try:
        main(argv)
        outcome = "accepted"
    except Accepted:
        outcome = "accepted"
    except SystemExit as exc:
        assert exc.code in (0, 2), f"{argv}: exit {exc.code}"
        outcome = "accepted" if exc.code == 0 else "refused"
    except Exception as exc:  # pragma: no cover - the failure this test exists to catch
        raise AssertionError(f"{argv}: {type(exc).__name__}: {exc}") from exc
    err = capsys.readouterr().err
    if outcome == "refused":
        if "Error: " in err:  # click's own usage error: "Usage: ...", "Try ...", "Error: ..."
            assert "Traceback" not in err
        else:
            assert err.startswith("error: "), err
            assert_one_line(err)
    return outcome, err


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def in_range(text: str, low: float, high: float, integer: bool, low_open: bool = False) -> bool:
    """The independent statement of a flag's range: a finite number in [low, high] (whole if ``integer``)."""
    value = _number(text.strip())
    if value is None or not math.isfinite(value):
        return False
    if integer and value != int(value):
        return False
    return (value > low if low_open else value >= low) and value <= high


# (command prefix, flag, low, high, integer, low_open)
PLAN = ["plan", "--target", TINY, "--gpu", "H100", "--json"]
SIM = ["simulate", "--num-requests", "20"]
SIM_OPEN = ["simulate", "--qps", "1"]
FLAGS = [
    (PLAN, "--gpu-memory-utilization", 0.0, 1.0, False, True),
    (PLAN, "--kv-cache-memory-gib", 0.0, 1e5, False, True),
    (PLAN, "--max-num-seqs", 1, 16384, True, False),
    (PLAN, "--max-num-batched-tokens", 1, 1 << 30, True, False),
    (PLAN, "--max-model-len", 1, 512, True, False),
    (PLAN, "--context", 1, 512, True, False),
    (PLAN, "--num-speculative-tokens", 1, 64, True, False),
    (PLAN, "--gpus", 1, 1 << 16, True, False),
    (["plan", "--target", TINY, "--json"], "--gpu-memory-gib", 0.0, 1e5, False, True),
    (["plan", "--target", TINY, "--json", "--gpu", "H100", "--draft", TINY], "--gpu-bandwidth-tbs", 0.0, 1e3,
     False, True),
    (SIM, "--qps", 1e-3, 1e6, False, False),
    (SIM_OPEN, "--duration", 0.0, (MAX_SIM_REQUESTS - 20) / 1.2, False, True),  # requests drawn = 1.2 x d x qps + 20
    (SIM_OPEN, "--num-requests", 1, MAX_SIM_REQUESTS, True, False),
    (["simulate", "--num-requests", "20"], "--concurrency", 1, 1 << 14, True, False),
    (SIM, "--k-sweep", 1, 64, True, False),
    (SIM, "--seed", 0, (1 << 63) - 1, True, False),
    (SIM + ["--arrival", "gamma"], "--burstiness", 1e-3, 1e3, False, False),
    (SIM, "--heterogeneity", 0.0, 10.0, False, False),
    (SIM, "--acceptance-length", 1.0, 4.0, False, False),
    (SIM, "--kv-capacity-tokens", 1, 1 << 30, True, False),
    (SIM, "--max-num-seqs", 1, 16384, True, False),
    (SIM, "--k", 1, 64, True, False),
    (SIM, "--prompt-len", 1, 1 << 30, False, False),
    (SIM, "--output-len", 1, 1 << 30, False, False),
    (SIM, "--temperature-mix", 0.0, 2.0, False, False),
]


# Flags that take comma-separated values: each must be in range.
LIST_FLAGS = {"--qps", "--concurrency", "--k-sweep", "--temperatures", "--validate-temperatures"}


def _estimate_prefix(tmp_path: Path) -> list[str]:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hello"}\n')
    return ["estimate", "--target", "nonexistent-model", "--prompts", str(prompts)]


ESTIMATE_FLAGS = [
    ("--temperatures", 0.0, 2.0, False, False),
    ("--validate-temperatures", 0.0, 2.0, False, False),
    ("--top-p", 0.0, 1.0, False, True),
    ("--cost-ratio", 0.0, 1e308, False, False),
    ("--seed", 0, (1 << 63) - 1, True, False),
    ("--max-new-tokens", 2, 1 << 16, True, False),
    ("--k-max", 1, 16, True, False),
    ("--limit", 1, 1 << 30, True, False),
    ("--batch-size", 0, 4096, True, False),
    ("--draft-layers", 1, 4096, True, False),
    ("--tp", 1, 1 << 16, True, False),
]


# The cases issue 13 lists, each a one-line error with exit 2 (none may hang or allocate without bound).
ISSUE_CASES = [
    PLAN + ["--guard-schedule", "[[1e400,2,3]]"],
    PLAN + ["--guard-schedule", "[[1,1e30,3]]"],
    PLAN + ["--guard-schedule", "[[1,2]]"],
    PLAN + ["--guard-schedule", "1-x:3"],
    ["plan", "--target", TINY, "--gpu-memory-gib", "inf"],
    PLAN + ["--kv-cache-memory-gib", "inf"],
    ["simulate", "--qps", "inf"],
    ["simulate", "--qps", "1e-300"],
    ["simulate", "--qps", "nan"],
    ["simulate", "--qps", "-1"],
    ["simulate", "--duration", "inf"],
    ["simulate", "--num-requests", "1000000000"],
    ["simulate", "--qps", "1e6", "--duration", "1e5"],
    ["simulate", "--seed", "-1"],
    ["simulate", "--concurrency", "inf"],
    ["simulate", "--k-sweep", "1e30"],
    ["simulate", "--temperature-mix", "nan:1"],
    ["simulate", "--prompt-len", "inf"],
    ["simulate", "--burstiness", "inf", "--arrival", "gamma"],
]


@pytest.mark.parametrize("argv", ISSUE_CASES, ids=[" ".join(a[-2:]) for a in ISSUE_CASES])
def test_issue_cases_exit_2_in_one_line(argv, capsys, stop_after_validation):
    start = time.monotonic()
    outcome, err = run_cli(argv, capsys)
    assert outcome == "refused", err
    assert time.monotonic() - start < 5


def test_estimate_issue_cases(tmp_path, capsys, stop_after_validation):
    prefix = _estimate_prefix(tmp_path)
    for extra in (["--temperatures", "nan"], ["--temperatures", "inf"], ["--temperatures", "-1"],
                  ["--temperatures", "3"], ["--seed", "-1"], ["--cost-ratio", "nan"], ["--limit", "0"]):
        outcome, err = run_cli(prefix + extra, capsys)
        assert outcome == "refused", (extra, err)
    outcome, _ = run_cli(prefix + ["--temperatures", "0,0.7,2"], capsys)
    assert outcome == "accepted"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for extra in (["--output-dir", str(not_a_dir)], ["--profile-out", str(tmp_path)]):
        outcome, err = run_cli(prefix + extra, capsys)
        assert outcome == "refused" and extra[0] in err, (extra, err)


def test_generated_flag_values(tmp_path, capsys, stop_after_validation):
    rng = random.Random(1313)
    estimate = _estimate_prefix(tmp_path)
    table = FLAGS + [(estimate, *row) for row in ESTIMATE_FLAGS]
    valid_texts = ["1", "2", "0.5", "4", "16", "100"]
    start = time.monotonic()
    accepted = 0
    cases = 0
    for prefix, flag, low, high, integer, low_open in table:
        for _ in range(9):  # ~60 ms a case on the shared 2-core machine (typer builds the app each call)
            text = rng.choice(NUMBER_TEXTS + valid_texts)
            value = text
            if flag == "--temperature-mix":
                value = f"{text}:1"
            outcome, err = run_cli([*prefix, flag, value], capsys)
            cases += 1
            if outcome == "accepted":
                accepted += 1
                items = [x for x in text.split(",") if x.strip()] if flag in LIST_FLAGS else [text]
                assert items and all(in_range(x, low, high, integer, low_open) for x in items), \
                    f"{prefix[0]} {flag} {text!r} was accepted"
    assert cases >= 300
    assert accepted > 30  # in-range values do get through: the refusals are not blanket
    assert time.monotonic() - start < 45


def test_catalog_flags(capsys):
    for argv in (["catalog", "--family", "é"], ["catalog", "--family", "x" * 10_000],
                 ["catalog", "--gpus", "--json"], ["catalog", "--nope"]):
        run_cli(argv, capsys)


def test_generated_profile_and_step_time_files(tmp_path, capsys, stop_after_validation):
    """--acceptance-profile and --step-time-model JSON files with hostile fields: accepted or one line."""
    import json

    from specwise.schemas.acceptance import AcceptanceClass, AcceptanceProfile
    from specwise.schemas.base import Source
    from specwise.simulate.defaults import default_deployment
    from tests.hostile import json_value

    profile = AcceptanceProfile(target="t", method="eagle3", source=Source.assumed,
                                classes=[AcceptanceClass(conditional=[0.7, 0.5], heterogeneity=0.5)])
    bases = {"--acceptance-profile": json.loads(profile.model_dump_json()),
             "--step-time-model": json.loads(default_deployment()[0].target.model_dump_json())}
    rng = random.Random(77)
    path = tmp_path / "in.json"
    outcomes = set()
    for _ in range(60):
        flag = rng.choice(sorted(bases))
        data = json.loads(json.dumps(bases[flag]))
        target = data["classes"][0] if flag == "--acceptance-profile" and rng.random() < 0.7 else data
        target[rng.choice(sorted(target))] = json_value(rng)
        try:
            path.write_text(json.dumps(data))
        except (RecursionError, ValueError):
            continue
        outcome, _ = run_cli(["simulate", "--qps", "1", flag, str(path)], capsys)
        outcomes.add(outcome)
    assert outcomes == {"accepted", "refused"}


TEXTS = ["abc", "", " ", "0.0.0", "999.999.999", "1", "-1", "nan", "\x00", "a" * 3000, "../x", "H100", "fp8", "awq",
         "eagle3", "ngram", "draft_model", "mtp", "auto", "1e400", "0.33.0+cpu", "v0.33", "é"]
TEXT_FLAGS = [
    (PLAN, ["--vllm-version", "--target-quant", "--draft-quant", "--method", "--gpu", "--kv-cache-dtype", "--draft",
            "--guard-schedule"]),
    (SIM, ["--vllm-version", "--quantization", "--method", "--gpu", "--draft", "--target", "--arrival",
           "--acceptance-rates", "--prompt-len", "--temperature-mix", "--qps", "--concurrency"]),
]


def test_generated_text_flags(capsys, stop_after_validation):
    """Names, versions and formats typed wrong (issue 13 found `--quantization` and `--method` tracebacks)."""
    rng = random.Random(2026)
    outcomes = []
    for _ in range(150):
        prefix, flags = rng.choice(TEXT_FLAGS)
        argv = list(prefix)
        for flag in rng.sample(flags, rng.randint(1, 2)):
            argv += [flag, rng.choice(TEXTS)]
        outcomes.append(run_cli(argv, capsys)[0])
    assert "accepted" in outcomes and "refused" in outcomes


@pytest.mark.parametrize("extra", [["--time-scale", "nan"], ["--time-scale", "inf"], ["--port", "70000"],
                                   ["--seed", "-1"], ["--k", "100"], ["--method", "x"], ["--quantization", "bogus"],
                                   ["--default-max-tokens", "0"], ["--heterogeneity", "nan"]])
def test_serve_sim_refuses_bad_values_before_serving(extra, capsys):
    outcome, err = run_cli(["serve-sim", *extra], capsys)
    assert outcome == "refused", err
