"""The console entry point's error handling: a usage error is exit 2, and an unexpected exception (a bug)
surfaces as itself rather than as an AttributeError from the click-exception lookup."""

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


def test_a_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--no-such-flag"])
    assert info.value.code == 2
    assert "No such option" in capsys.readouterr().err
