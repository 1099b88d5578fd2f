"""`specwise report` on the command line: three outputs, exit 2 with one line on bad input."""

from __future__ import annotations

import subprocess
import sys

from tests.report import builders as B


def _specwise(*args, cwd):
    return subprocess.run([sys.executable, "-m", "specwise", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def test_report_writes_html_markdown_and_json(tmp_path):
    (tmp_path / "d.json").write_text(B.decision().model_dump_json())
    run = B.run_dir(tmp_path / "run")
    out = _specwise("report", "d.json", str(run), "-o", "out/r.html", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "BORDERLINE" in out.stdout
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"r.html", "r.md", "r.json"}


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    for args in (["x.json"], ["missing.json"], ["x.json", "-o", "r.pdf"]):
        out = _specwise("report", *args, cwd=tmp_path)
        assert out.returncode == 2, out
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
        assert "Traceback" not in out.stderr


def test_help_does_not_import_matplotlib():
    code = ("import sys; from specwise.cli.main import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'matplotlib' not in sys.modules and 'jinja2' not in sys.modules, 'heavy import at --help'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
