"""The repository must work on any machine: no tracked link out of it, no absolute path of one machine in code.

A tracked symbolic link to an absolute path (once `.venv-vllm -> <a path on one machine>`) made `make test` fail on
every fresh clone while CI, run where that path existed, stayed green. These checks make that class of mistake
fail here, with the file and the fix named.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Code, configuration and build files. Recorded server logs, captured fixtures and result files are data
# about one machine by nature and are exempt.
CHECKED_SUFFIXES = {".py", ".toml", ".cfg", ".ini", ".sh", ".yaml", ".yml", ".json", ".txt", ".md", ""}
CHECKED_TOP = ("Makefile", ".ci/", "pyproject.toml", "src/", "tests/", "benchmarks/", "examples/", ".gitignore")
EXEMPT = (
    re.compile(r"(^|/)fixtures/"),
    re.compile(r"^benchmarks/results/"),
    re.compile(r"\.(log|jsonl)$"),
)
_SEP = "/"
# Assembled from parts so that this file does not match itself.
MACHINE_PATH = re.compile(
    "(?<![\\w.])(" + "|".join([
        _SEP + "home" + _SEP + r"[A-Za-z0-9_.-]+",
        _SEP + "root" + _SEP,
        _SEP + "Users" + _SEP,
        _SEP + "work" + _SEP,
        _SEP + "opt" + _SEP + r"(pypi|wheels|conda)",
        r"[A-Za-z]:\\Users\\",
        _SEP + r"[^\s'\"`]*" + _SEP + r"\.?venv[^\s'\"`/]*" + _SEP + "(bin|lib)" + _SEP,
        _SEP + r"[^\s'\"`]*" + _SEP + "site-packages",
    ]) + ")"
)


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _tracked() -> list[str]:
    try:
        return [p for p in _git("ls-files", "-z").split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (the checks read the tracked files)")


def outside_links(repo: Path, stage_lines: list[str]) -> list[str]:
    """Tracked links (``git ls-files -s`` lines of mode 120000) that are absolute or leave the repository."""
    bad = []
    for line in stage_lines:
        meta, _, path = line.partition("\t")
        if not meta.startswith("120000"):
            continue
        blob = meta.split()[1]
        target = _git("cat-file", "-p", blob, cwd=repo).strip()
        resolved = os.path.normpath(os.path.join(repo, os.path.dirname(path), target))
        if os.path.isabs(target) or not (resolved + os.sep).startswith(str(repo) + os.sep):
            bad.append(f"{path} -> {target}")
    return bad


def machine_paths(path: str, text: str) -> list[str]:
    """Lines of a checked file that name an absolute path of one machine."""
    if not path.startswith(CHECKED_TOP) or any(p.search(path) for p in EXEMPT):
        return []
    if Path(path).suffix not in CHECKED_SUFFIXES and Path(path).name != "Makefile":
        return []
    return [f"{path}:{n}: {m.group(1)}" for n, line in enumerate(text.splitlines(), 1)
            for m in [MACHINE_PATH.search(line)] if m]


def test_no_tracked_link_leaves_the_repository():
    bad = outside_links(REPO, [ln for ln in _git("ls-files", "-s").splitlines() if ln])
    assert not bad, (
        "tracked symbolic links that point to an absolute path or out of the repository (they break every other "
        "machine): " + ", ".join(bad) + ". Fix: `git rm --cached LINK`, and ignore it in .gitignore without a "
        "trailing slash (a pattern `name/` matches a directory, not a link)."
    )


def test_no_machine_specific_absolute_path_in_code_or_config():
    bad: list[str] = []
    for path in _tracked():
        full = REPO / path
        if full.is_symlink() or not full.is_file():
            continue
        try:
            text = full.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        bad += machine_paths(path, text)
    assert not bad, (
        "code, configuration or build files name an absolute path of one machine (it exists only where it was "
        "written):\n  " + "\n  ".join(bad) + "\nFix: use a path relative to the repository (Makefile: $(CURDIR), "
        "Python: Path(__file__)), an environment variable, or ../shared for the shared reference."
    )


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The detectors flag the mistakes they exist for and pass ordinary paths (guards the two tests above)."""
    venv_link = "/".join(["", "work", "venvs", "vllm"])
    assert machine_paths("Makefile", f"VLLM := {venv_link}\n")
    assert machine_paths("src/specwise/x.py", "p = '" + "/".join(["", "home", "alice", "x"]) + "'\n")
    assert machine_paths("tests/x.py", "sys.path.insert(0, '" + "/".join(["", "srv", ".venv", "lib"]) + "/')\n")
    assert not machine_paths("src/specwise/x.py", "p = Path(__file__).parent / 'data'\n")
    assert not machine_paths("tests/fixtures/vllm/x.log", venv_link)
    assert not machine_paths("benchmarks/results/run.json", venv_link)
    # A real link to an absolute path, as git stages it.
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".venv-vllm").symlink_to(venv_link)
    (repo / "inside").symlink_to("src")
    subprocess.run(["git", "add", ".venv-vllm", "inside"], cwd=repo, check=True)
    lines = subprocess.run(["git", "ls-files", "-s"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert outside_links(repo, lines) == [f".venv-vllm -> {venv_link}"]
