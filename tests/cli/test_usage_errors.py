"""Usage mistakes print a usage message and exit 2, never a traceback, whichever click typer raises.

typer >= 0.26 raises its vendored ``typer._click`` classes; the real ``click`` package may be installed beside it
(the estimate extra brings it through huggingface_hub). The commands run as a user runs them (a subprocess of
the installed environment), once as is and once with the real ``click`` made unimportable (the core install).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

MISTAKES = [
    ["simulate", "--bogus-option"],
    ["plan", "--target"],
    ["nosuchcommand"],
]

BLOCK_CLICK = (
    "import sys, importlib.abc\n"
    "class _NoClick(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'click' or name.startswith('click.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'click'\", name=name)\n"
    "sys.meta_path.insert(0, _NoClick())\n"
)


def _run(argv: list[str], block_click: bool) -> subprocess.CompletedProcess:
    code = (BLOCK_CLICK if block_click else "") + (
        "import sys; from specwise.cli.main import main; sys.argv = ['specwise'] + sys.argv[1:]; main()"
    )
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("block_click", [False, True], ids=["installed-env", "without-click"])
@pytest.mark.parametrize("argv", MISTAKES, ids=[" ".join(a) for a in MISTAKES])
def test_usage_mistake_is_a_clean_exit_2(argv, block_click):
    proc = _run(argv, block_click)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert "Error:" in out  # click's usage message names the mistake


def test_version_and_help_still_exit_0():
    for argv in (["--version"], ["plan", "--help"]):
        proc = _run(argv, block_click=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
