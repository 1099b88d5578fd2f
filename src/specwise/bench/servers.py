"""Servers under test: launch them one after the other, probe what they are, and compare the two arms.

Users usually have one GPU box, so ``--baseline-cmd`` / ``--speculative-cmd`` servers run in turn:
each command starts in its own process group with its output kept in the run directory, the bench
waits for ``/health``, records ``/version``, the speculative config (method, k,
``rejection_sample_method``; ``synthetic`` acceptance does not transfer, docs/reference/vllm-speculative-decoding.md
§1.6) and the engine generation, runs the cells, and stops the group (SIGTERM, then SIGKILL).

The two arms must differ *only* in speculation. On vLLM 0.26 with a GPU, enabling ``draft_model``
silently switched the model runner and turned async scheduling off (issue 5), and that alone moved
TPOT. :func:`compare_settings` lists every other difference found in the commands, the startup logs
and ``/metrics`` (``cache_config_info``), and :func:`like_for_like_baseline_cmd` builds the baseline
command with the speculative arm's non-speculative settings forced.

Startup logs are read by the one parser, :func:`specwise.plan.startup_log.extract_engine_settings`
(re-exported here as ``extract_log_settings``). ``ServerInfo`` and ``ServeCommand`` live in
``specwise.schemas.servers`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from specwise.errors import UserError
from specwise.metrics.adapters import detect_flavor
from specwise.metrics.prometheus import MetricsUnavailable, scrape_metrics
from specwise.plan.startup_log import extract_engine_settings as extract_log_settings
from specwise.schemas.servers import ServeCommand, ServerInfo

__all__ = [
    "LaunchedServer",
    "ServeCommand",
    "ServerInfo",
    "compare_settings",
    "extract_log_settings",
    "like_for_like_baseline_cmd",
    "parse_serve_command",
    "probe_server",
]

# Settings that must match between the arms (everything that is not speculation).
COMPARED_SETTINGS = (
    "model", "model_runner", "async_scheduling", "cudagraph_mode", "enforce_eager", "chunked_prefill",
    "max_num_batched_tokens", "max_num_seqs", "gpu_memory_utilization", "kv_cache_tokens", "num_gpu_blocks",
    "block_size", "max_model_len", "tensor_parallel_size", "dtype", "kv_cache_dtype", "quantization",
    "enable_prefix_caching", "stream_interval", "engine_generation",
)

# CLI flag -> setting name (vLLM `vllm serve` flags; SGLang equivalents where they exist).
_FLAG_SETTINGS = {
    "--max-num-seqs": "max_num_seqs", "--gpu-memory-utilization": "gpu_memory_utilization",
    "--max-num-batched-tokens": "max_num_batched_tokens", "--max-model-len": "max_model_len",
    "--tensor-parallel-size": "tensor_parallel_size", "-tp": "tensor_parallel_size", "--dtype": "dtype",
    "--kv-cache-dtype": "kv_cache_dtype", "--quantization": "quantization", "-q": "quantization",
    "--block-size": "block_size", "--stream-interval": "stream_interval",
    "--num-gpu-blocks-override": "num_gpu_blocks", "--mem-fraction-static": "gpu_memory_utilization",
    "--max-running-requests": "max_num_seqs", "--tp-size": "tensor_parallel_size",
}
_BOOL_FLAGS = {
    "--enforce-eager": ("enforce_eager", "True"),
    "--async-scheduling": ("async_scheduling", "enabled"), "--no-async-scheduling": ("async_scheduling", "disabled"),
    "--enable-chunked-prefill": ("chunked_prefill", "enabled"),
    "--no-enable-chunked-prefill": ("chunked_prefill", "disabled"),
    "--enable-prefix-caching": ("enable_prefix_caching", "True"),
    "--no-enable-prefix-caching": ("enable_prefix_caching", "False"),
}


def parse_serve_command(cmd: str) -> ServeCommand:
    """Parse host/port, model, speculative config and engine flags from a launch command."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise UserError(f"cannot parse server command {cmd!r}: {exc}") from exc
    if not argv:
        raise UserError("empty server command")
    env: dict[str, str] = {}
    while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
        k, _, v = argv.pop(0).partition("=")
        env[k] = v
    sglang = any("sglang" in a for a in argv[:3])
    host, port = "127.0.0.1", "30000" if sglang else "8000"
    model = None
    spec: dict[str, Any] | None = None
    settings: dict[str, str] = {}
    i = 0
    # `vllm serve MODEL`: the model is the first positional argument after `serve`.
    if "serve" in argv:
        j = argv.index("serve") + 1
        if j < len(argv) and not argv[j].startswith("-"):
            model = argv[j]
    while i < len(argv):
        a = argv[i]
        key, eq, inline = a.partition("=")
        val = inline if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        step = 1 if eq else 2
        if key == "--host":
            host = "127.0.0.1" if val in ("0.0.0.0", "::", "") else val
        elif key == "--port":
            port = val
        elif key in ("--model", "--model-path"):
            model = val
        elif key == "--speculative-config":
            try:
                spec = json.loads(val)
            except json.JSONDecodeError as exc:
                raise UserError(f"--speculative-config is not valid JSON: {exc.msg}") from exc
        elif key.startswith("--speculative-config."):  # dotted form (0.9.1+)
            spec = spec or {}
            spec[key.split(".", 1)[1].replace("-", "_")] = _auto(val)
        elif key in ("--speculative-model", "--speculative-draft-model-path"):
            spec = {**(spec or {}), "model": val}
        elif key in ("--num-speculative-tokens", "--speculative-num-draft-tokens"):
            spec = {**(spec or {}), "num_speculative_tokens": _auto(val)}
        elif key == "--speculative-algorithm":
            spec = {**(spec or {}), "method": val.lower()}
        elif key in _FLAG_SETTINGS:
            settings[_FLAG_SETTINGS[key]] = val
        elif key in _BOOL_FLAGS:
            name, value = _BOOL_FLAGS[key]
            settings[name] = value
            step = 1
        elif key == "--compilation-config" or key == "-O":
            m = re.search(r"cudagraph_mode['\"]?\s*:\s*['\"]?(\w+)", val)
            if m:
                settings["cudagraph_mode"] = m.group(1)
        else:
            step = 1
        i += step
    if env.get("VLLM_USE_V2_MODEL_RUNNER") in ("0", "1"):
        settings["model_runner"] = "v2" if env["VLLM_USE_V2_MODEL_RUNNER"] == "1" else "v1"
    if model:
        settings["model"] = model
    return ServeCommand(argv=argv, url=f"http://{host}:{port}", model=model, speculative=spec,
                        settings=settings, env=env)


def _auto(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


async def probe_server(url: str, role: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0,
                       info: ServerInfo | None = None) -> ServerInfo:
    """Fill a :class:`ServerInfo` from ``/version``, ``/v1/models`` and ``/metrics`` (each optional)."""
    info = info or ServerInfo(role=role, url=url)
    root = url.rstrip("/").removesuffix("/v1")
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers or {}) as client:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = await client.get(root + "/version")
            if r.status_code == 200:
                info.version = str(r.json().get("version")) if isinstance(r.json(), dict) else None
        # a reply of the wrong shape is a server that does not say, not a crash
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            r = await client.get(root + "/v1/models")
            if r.status_code == 200:
                model = r.json()["data"][0]
                info.model = info.model or str(model.get("id"))
                if model.get("max_model_len"):
                    info.settings.setdefault("max_model_len", str(model["max_model_len"]))
        try:
            snap = await scrape_metrics(root, client=client, timeout_s=timeout_s)
        except MetricsUnavailable as exc:
            info.notes.append(f"/metrics unavailable: {exc}")
        else:
            flavor = detect_flavor(snap)
            info.metrics_flavor = flavor.value
            if flavor.value == "vllm_v0":
                info.engine_generation = "V0"
            elif flavor.value.startswith("vllm_v1"):
                info.engine_generation = "V1"
            elif flavor.value == "sglang":
                info.engine_generation = "sglang"
            elif flavor.value == "vllm_no_spec":
                # the `engine` label exists from V1 0.8.3 on and never in V0 (docs/reference/vllm-speculative-decoding.md §2.1)
                has_engine = any("engine" in s.labels for series in snap.samples.values() for s in series)
                info.engine_generation = "V1" if has_engine else info.engine_generation
            for labels in snap.label_sets("vllm:cache_config_info"):
                for key in ("num_gpu_blocks", "block_size", "gpu_memory_utilization", "cache_dtype",
                            "enable_prefix_caching"):
                    if labels.get(key) not in (None, "", "None"):
                        name = "kv_cache_dtype" if key == "cache_dtype" else key
                        info.settings.setdefault(name, labels[key])
            if info.k is None:
                positions = snap.by_label("vllm:spec_decode_num_accepted_tokens_per_pos_total", "position")
                readable = [p for p in positions if p.isdigit()]  # an unreadable label is not a position
                if readable:
                    info.k = len(readable)
    return info


KV_CAPACITY_SETTINGS = ("kv_cache_tokens", "num_gpu_blocks")


def compare_settings(baseline: ServerInfo, speculative: ServerInfo, *, include_kv: bool = True) -> list[str]:
    """Every non-speculative setting that differs between the arms, as readable lines.

    ``include_kv=False`` leaves out KV capacity, which a draft model legitimately reduces (its weights
    and KV layers share the memory budget, docs/reference/vllm-speculative-decoding.md §7).
    """
    diffs = []
    for key in COMPARED_SETTINGS:
        if not include_kv and key in KV_CAPACITY_SETTINGS:
            continue
        a, b = baseline.settings.get(key), speculative.settings.get(key)
        if key == "engine_generation":
            a, b = baseline.engine_generation, speculative.engine_generation
        if key == "num_gpu_blocks" and baseline.settings.get("kv_cache_tokens"):
            continue  # KV capacity is compared once, in tokens
        if a is not None and b is not None and _norm(a) != _norm(b):
            diffs.append(f"{key}: baseline {a} vs speculative {b}")
    return diffs


def _norm(v: str) -> str:
    try:
        return f"{float(v):g}"
    except ValueError:
        return v.strip().lower()


def like_for_like_baseline_cmd(baseline_cmd: str, speculative: ServerInfo) -> str | None:
    """The baseline command with the speculative arm's non-speculative settings forced, or None if nothing to force.

    KV capacity is forced in blocks (``--num-gpu-blocks-override``) because the draft takes memory the
    baseline would otherwise turn into KV cache.
    """
    s = speculative.settings
    env: list[str] = []
    flags: list[str] = []
    if s.get("model_runner") in ("v1", "v2"):
        env.append(f"VLLM_USE_V2_MODEL_RUNNER={'1' if s['model_runner'] == 'v2' else '0'}")
    if s.get("async_scheduling") in ("enabled", "disabled"):
        flags.append("--async-scheduling" if s["async_scheduling"] == "enabled" else "--no-async-scheduling")
    if s.get("enforce_eager") == "True":
        flags.append("--enforce-eager")
    for key, flag in (("max_num_seqs", "--max-num-seqs"), ("gpu_memory_utilization", "--gpu-memory-utilization"),
                      ("max_num_batched_tokens", "--max-num-batched-tokens"), ("num_gpu_blocks",
                                                                                "--num-gpu-blocks-override")):
        if s.get(key):
            flags.append(f"{flag} {s[key]}")
    if not env and not flags:
        return None
    try:
        argv = shlex.split(baseline_cmd)
    except ValueError:
        return None
    forced = {f.split()[0] for f in flags}
    kept: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        key = a.split("=")[0]
        if key in forced or key in ("--async-scheduling", "--no-async-scheduling"):
            needs_value = "=" not in a and key not in ("--enforce-eager", "--async-scheduling", "--no-async-scheduling")
            skip = needs_value and i + 1 < len(argv)
            continue
        if re.match(r"^VLLM_USE_V2_MODEL_RUNNER=", a):
            continue
        kept.append(a)
    return " ".join(env + [shlex.join(kept)] + flags)


class LaunchedServer:
    """A server process started by the bench: own process group, log file, /health wait, clean stop."""

    def __init__(self, role: str, cmd: str, log_path: Path, startup_timeout_s: float = 1800.0) -> None:
        self.role = role
        self.cmd = cmd
        self.parsed = parse_serve_command(cmd)
        self.url = self.parsed.url
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log_fh = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115
        # bash -c so that `VAR=1 vllm serve ...` prefixes work; a new session = a process group we can signal.
        self.proc = subprocess.Popen(["bash", "-c", "exec " + self.cmd if not self.parsed.env else self.cmd],
                                     stdout=self._log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=os.environ.copy())

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_healthy(self, poll_s: float = 0.5) -> None:
        """Until GET /health answers 200; a process that exits first is a UserError with its log tail."""
        deadline = time.monotonic() + self.startup_timeout_s
        async with httpx.AsyncClient(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise UserError(
                        f"{self.role} server exited with code {self.proc.returncode} before becoming healthy "
                        f"(log: {self.log_path}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(self.url + "/health")
                    if r.status_code == 200:
                        return
                await asyncio.sleep(poll_s)
        self.stop()
        raise UserError(f"{self.role} server not healthy after {self.startup_timeout_s:.0f} s (log: {self.log_path})")

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``grace_s``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Children that ignored SIGTERM but outlived the leader still belong to the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return self.proc.returncode

    def info(self) -> ServerInfo:
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        settings = dict(self.parsed.settings)
        settings.update(extract_log_settings(log))
        info = ServerInfo(role=self.role, url=self.url, launched=True, command=self.cmd, model=self.parsed.model,
                          settings=settings, startup_log=str(self.log_path))
        info.version = settings.pop("version", None)
        info.engine_generation = settings.get("engine_generation")
        from_log = {k: settings.pop(k) for k in ("spec_method", "spec_k", "rejection_sample_method") if k in settings}
        info.apply_speculative(self.parsed.speculative)
        # The engine's own config line says what really ran (e.g. defaults the command left out).
        if from_log.get("spec_method"):
            info.spec_method = from_log["spec_method"]
        if from_log.get("spec_k"):
            info.k = int(from_log["spec_k"])
        if from_log.get("rejection_sample_method"):
            info.rejection_sample_method = from_log["rejection_sample_method"]
            info.synthetic_acceptance = info.rejection_sample_method == "synthetic"
        return info
