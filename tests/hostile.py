"""Hostile inputs for the generated (fuzz) tests of every reader: JSON values, numbers as text, mutated text.

Each generator takes a :class:`random.Random` built from a fixed seed, so a failure reproduces exactly; the
tests print the failing case. The values are the ones that broke readers before (issue 13): wrong types,
nulls, lists, deep nesting, huge / non-finite / negative numbers, 400-digit integers, lone surrogates.
"""

from __future__ import annotations

import random
from typing import Any

HUGE_DIGITS = "9" * 400

# Numbers as a command line or a log would carry them.
NUMBER_TEXTS = [
    "0", "1", "-1", "2", "0.5", "-0.0", "1.5", "3", "4", "8", "16", "1e-300", "1e-3", "1e30", "1e400", "-1e400",
    "inf", "-inf", "nan", "NaN", "Infinity", HUGE_DIGITS, "-" + HUGE_DIGITS, "abc", "", " ", "1,2", "0x10", "1_000",
    "12", "100", "65536", "1e6", "200001", "9223372036854775808",
]


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


def json_value(rng: random.Random) -> Any:
    """One hostile JSON-able value (Python float inf/nan serialise as Infinity/NaN, which json.loads reads)."""
    pool: list[Any] = [
        None, True, False, 0, -1, 1, 2, 7, 64, 1.5, -3.25, 1e30, 1e300, float("inf"), float("-inf"), float("nan"),
        10**40, -(10**40), "abc", "", "64", "\ud800", "x" * 300, [], [1, 2], ["a"], [5], {}, {"a": 1},
        {"from": "human"}, [{"from": "human", "value": 5}], [{"role": "user"}], [{"role": 1, "content": []}],
        nested(5), nested(40), nested(600),
    ]
    return rng.choice(pool)


def number_text(rng: random.Random) -> str:
    return rng.choice(NUMBER_TEXTS)


def mutate_text(rng: random.Random, text: str, tokens: list[str], edits: int = 6) -> str:
    """``text`` with 1..``edits`` random insertions, deletions or replacements drawn from ``tokens``."""
    chars = list(text)
    for _ in range(rng.randint(1, edits)):
        pos = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.45:
            chars.insert(pos, rng.choice(tokens))
        elif op < 0.7:
            del chars[pos:pos + rng.randint(1, 12)]
        elif chars:
            chars[min(pos, len(chars) - 1)] = rng.choice(tokens)
    return "".join(chars)


def assert_one_line(message: str) -> None:
    """A user-facing error is one line (no traceback, no embedded newline)."""
    assert message.strip(), "empty error message"
    assert "\n" not in message.strip(), f"multi-line error: {message!r}"
    assert "Traceback" not in message, message
