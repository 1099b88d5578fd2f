"""Launch a real vLLM-CPU OpenAI-compatible server for integration tests.

Environment and arguments follow vllm-cpu-recipe.md ("Environment that worked"): offline Hugging Face, a small CPU
KV cache, a private torch.compile cache, the Intel OpenMP runtime preloaded, and the deprecated but working
`python -m vllm.entrypoints.openai.api_server` entry point (the `vllm` console script fails because the
distribution is named `vllm-cpu`). The server runs in its own process group and is stopped with SIGTERM (then
SIGKILL after a grace period), so a failing test never leaves an engine core process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

DEFAULT_ARGS = (
    "--max-model-len", "512",
    "--max-num-seqs", "8",
    "--enforce-eager",
)
# (label, seconds from launch to /health 200) of every server started in this process, for the run summary.
STARTUPS: list[tuple[str, float]] = []
STARTUP_TIMEOUT_S = float(os.environ.get("SPECWISE_VLLM_STARTUP_TIMEOUT", "600"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_environment(python: Path, cache_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "VLLM_CACHE_ROOT": str(cache_root),
        "PYTHONUNBUFFERED": "1",
    })
    # Our test process's virtualenv must not leak into the server's interpreter.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    iomp = python.resolve().parent.parent / "lib" / "libiomp5.so"
    venv_lib = python.parent.parent / "lib" / "libiomp5.so"
    for candidate in (venv_lib, iomp):
        if candidate.exists():
            env["LD_PRELOAD"] = str(candidate)
            break
    return env


@dataclass
class VllmServer:
    """A running server: its base URL, launch command, log file and measured start-up time."""

    url: str
    model: str
    command: list[str]
    log_path: Path
    startup_s: float
    process: subprocess.Popen = field(repr=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


@contextmanager
def vllm_server(
    python: Path,
    model: Path | str,
    *,
    log_path: Path,
    served_model_name: str | None = None,
    speculative_config: dict | None = None,
    dtype: str = "float32",
    extra_args: tuple[str, ...] = (),
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[VllmServer]:
    """Start `python -m vllm.entrypoints.openai.api_server` and yield once GET /health answers 200."""
    port = free_port()
    name = served_model_name or Path(str(model)).name
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--host", "127.0.0.1", "--port", str(port),
        "--model", str(model), "--served-model-name", name,
        "--dtype", dtype, *DEFAULT_ARGS, *extra_args,
    ]
    if speculative_config is not None:
        command += ["--speculative-config", json.dumps(speculative_config)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="specwise-vllm-cache-") as cache_root, open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=vllm_environment(python, Path(cache_root)), start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = started + startup_timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"vLLM exited with code {process.returncode} during start-up; log {log_path}:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"vLLM not healthy after {startup_timeout_s:.0f} s; log {log_path}:\n{_tail(log_path)}"
                    )
                try:
                    if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            startup_s = time.monotonic() - started
            label = f"{name} ({speculative_config.get('method') if speculative_config else 'no speculation'})"
            STARTUPS.append((label, startup_s))
            yield VllmServer(url, name, command, log_path, startup_s, process)
        finally:
            _stop(process)
