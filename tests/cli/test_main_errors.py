"""The console entry point's error handling: an unexpected exception (a bug) surfaces as itself rather than as
an AttributeError from the click-exception lookup (usage errors: test_usage_errors.py)."""

from __future__ import annotations

import pytest

from specwise.cli.main import main


def test_an_unexpected_exception_is_not_masked(monkeypatch):
    import specwise.simulate.sweep

    def boom(*_args, **_kwargs):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(specwise.simulate.sweep, "run_sweep", boom)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["simulate", "--qps", "1"])

