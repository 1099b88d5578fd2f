"""Startup memory of a launched server vs the plan for its own command.

For every server the bench launches, the memory lines of its startup log (weights loaded, KV cache memory,
KV cache tokens, maximum concurrency; :func:`specwise.plan.startup_log.parse_startup_log`) are compared with
what ``specwise plan`` predicts (:func:`specwise.plan.startup_log.compare_with_log`), the same comparison
``specwise plan --check-log`` prints. The plan comes either from a ``specwise plan --json`` file
(``--plan``; the baseline arm is compared with its baseline budget, the speculative arm with its speculative
one) or is derived from the command line itself: model, ``--tensor-parallel-size``,
``--gpu-memory-utilization``, ``--max-model-len``, ``--max-num-seqs``, ``--max-num-batched-tokens``,
``--kv-cache-dtype``, ``--kv-cache-memory-bytes``, ``--dtype``, ``--quantization`` and the
``--speculative-config`` (method, draft, k, draft TP), with what the server itself reported filling the
gaps (vLLM version from the log, max_model_len from ``/v1/models``, block size from ``/metrics``).

The command does not name the GPU, so a GPU server needs ``--gpu NAME``. A vLLM-CPU server names its KV
space and node memory in the log (``Explicitly set (X/Y) GiB for KV cache``); the plan takes the KV space
from ``VLLM_CPU_KVCACHE_SPACE`` (the command's prefix, else the bench's environment, which the server
inherits) or ``--kv-cache-memory-bytes`` (vLLM-CPU reads the variable first), and only when neither is set
from the log, which then leaves the per-token accounting as the thing checked.

A server that cannot be planned (model not in the catalog and not a local directory, a speculative method
the plan does not model, no memory lines in the log) gets one line saying why; nothing here raises.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import ValidationError

from specwise.catalog.vllm_versions import newest_version, parse_version
from specwise.errors import UserError
from specwise.plan.startup_log import capacity_deviations, compare_with_log, parse_startup_log
from specwise.schemas.base import GIB
from specwise.schemas.model import Quantization
from specwise.schemas.plan import MemoryPlan, PlanRequest, PlanResult, StartupLogFacts
from specwise.schemas.servers import MemoryCheck, ServeCommand

__all__ = ["MemoryCheck", "NotPlannable", "check_server_memory", "load_plan_file", "plan_request_for_command"]

PLANNED_METHODS = ("draft_model", "ngram", "eagle", "eagle3", "mtp")
# vLLM --dtype values -> the float weight format the plan uses for them (KV "auto" follows it too).
_DTYPES = {"float32": Quantization.fp32, "float": Quantization.fp32, "bfloat16": Quantization.bf16,
           "float16": Quantization.fp16, "half": Quantization.fp16}
# --quantization values that make vLLM quantise a 16-bit checkpoint at load time; the other methods
# (awq, gptq, compressed-tensors, ...) describe the checkpoint, whose name or config tells the plan.
_AT_LOAD = {"fp8": Quantization.fp8, "bitsandbytes": Quantization.bnb4}


class NotPlannable(Exception):
    """The command cannot be turned into a plan; the message is the one-line reason."""


def load_plan_file(path: str) -> PlanResult:
    """A ``specwise plan --json`` output; UserError with one line when it is not one."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UserError(f"--plan {path}: cannot read it ({exc.strerror})") from None
    try:
        return PlanResult.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise UserError(
            f"--plan {path}: not a `specwise plan --json` result ({where}: {err.get('msg')})"
        ) from None


def _flag(argv: list[str], *names: str) -> str | None:
    """Value of the last ``--flag VALUE`` / ``--flag=VALUE`` among ``names``."""
    value = None
    for i, a in enumerate(argv):
        key, eq, inline = a.partition("=")
        if key in names:
            value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def _int(text: str | None, what: str) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(float(text))  # type: ignore[arg-type]
    except ValueError:
        raise NotPlannable(f"{what} {text!r} is not a number") from None


def _version(facts: StartupLogFacts, reported: str | None) -> tuple[str | None, str | None]:
    for text, where in ((facts.vllm_version, "startup log"), (reported, "/version")):
        if text and (m := re.match(r"v?(\d+\.\d+\.\d+)", text)):
            return m.group(1), where
    return None, None


def _speculative(spec: dict, base_dtype: Quantization | None) -> dict:
    """PlanRequest fields for a --speculative-config mapping."""
    raw = str(spec.get("method") or "").strip().lower()
    model = spec.get("model")
    if model == "[ngram]" or raw == "ngram":
        method = "ngram"
    elif not raw:
        method = "draft_model" if model else None
    elif raw in PLANNED_METHODS:
        method = raw
    elif raw.endswith("_mtp"):  # deepseek_mtp, qwen3_next_mtp, ...: the target's own MTP layers
        method = "mtp"
    else:
        method = None
    if method is None:
        raise NotPlannable(f"the plan does not model speculative method {spec.get('method')!r} "
                           f"(it plans {', '.join(PLANNED_METHODS)})")
    out: dict = {"method": method}
    if method in ("draft_model", "eagle", "eagle3"):
        if not model:
            if method == "draft_model":
                raise NotPlannable("the speculative config names no draft model")
        else:
            out["draft"] = str(model)
    k = spec.get("num_speculative_tokens")
    if k is not None:
        out["num_speculative_tokens"] = _int(str(k), "num_speculative_tokens")
    draft_tp = spec.get("draft_tensor_parallel_size")
    if draft_tp is not None:
        out["draft_tp"] = _int(str(draft_tp), "draft_tensor_parallel_size")
    quant = spec.get("quantization")
    if method != "mtp" and "draft" in out:
        if quant in _AT_LOAD:
            out["draft_quant"] = _AT_LOAD[quant]
        elif base_dtype is not None and not quant:
            out["draft_quant"] = base_dtype  # the draft runs in the target's dtype
    return out


def plan_request_for_command(
    cmd: ServeCommand,
    facts: StartupLogFacts,
    *,
    gpu: str | None = None,
    gpu_memory_gib: float | None = None,
    server_settings: Mapping[str, str] | None = None,
    reported_version: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[PlanRequest, list[str]]:
    """The PlanRequest a launch command describes, plus where each input that is not on it came from.

    Raises :class:`NotPlannable` with a one-line reason.
    """
    environ = os.environ if environ is None else environ
    server_settings = server_settings or {}
    argv, cmd_settings = cmd.argv, cmd.settings
    notes: list[str] = []
    if not cmd.model:
        raise NotPlannable("the command names no model")
    if (pp := _int(_flag(argv, "--pipeline-parallel-size", "-pp"), "--pipeline-parallel-size")) and pp > 1:
        raise NotPlannable("the plan does not model pipeline parallelism (--pipeline-parallel-size > 1)")
    if _flag(argv, "--num-gpu-blocks-override") is not None:
        raise NotPlannable("--num-gpu-blocks-override fixes the KV cache size, so there is no budget to check")
    kw: dict = {"target": cmd.model}

    dtype_text = (cmd_settings.get("dtype") or "auto").lower()
    dtype = _DTYPES.get(dtype_text)
    if dtype_text != "auto" and dtype is None:
        raise NotPlannable(f"--dtype {dtype_text} is not a format the plan models "
                           "(auto, bfloat16, float16, float32)")
    quant_text = (cmd_settings.get("quantization") or "").lower()
    if quant_text in _AT_LOAD:
        kw["target_quant"] = _AT_LOAD[quant_text]
    elif quant_text:
        notes.append(f"--quantization {quant_text}: weight format taken from the checkpoint's name/config")
    elif dtype is not None:
        kw["target_quant"] = dtype

    kv_dtype = (cmd_settings.get("kv_cache_dtype") or "auto").lower()
    if kv_dtype.startswith("fp8"):
        kw["kv_cache_dtype"] = "fp8"
    elif kv_dtype not in ("auto", ""):
        raise NotPlannable(f"--kv-cache-dtype {kv_dtype} is not one the plan models (auto, fp8)")

    kv_bytes = _int(_flag(argv, "--kv-cache-memory-bytes"), "--kv-cache-memory-bytes")
    on_cpu = facts.kv_cache_device == "CPU" or facts.cpu_memory_gib is not None
    if on_cpu:
        if facts.cpu_memory_gib is None:
            raise NotPlannable("vLLM-CPU log without its 'set (X/Y) GiB for KV cache' line: node memory unknown")
        kw["gpu_memory_gib"] = facts.cpu_memory_gib
        notes.append(f"device: CPU with {facts.cpu_memory_gib:g} GiB (startup log)")
        space = cmd.env.get("VLLM_CPU_KVCACHE_SPACE") or environ.get("VLLM_CPU_KVCACHE_SPACE")
        where = "the command" if cmd.env.get("VLLM_CPU_KVCACHE_SPACE") else "the bench's environment"
        if space and _int(space, "VLLM_CPU_KVCACHE_SPACE"):
            kw["kv_cache_memory_gib"] = float(_int(space, "VLLM_CPU_KVCACHE_SPACE"))  # type: ignore[arg-type]
            notes.append(f"KV space {space} GiB from VLLM_CPU_KVCACHE_SPACE ({where})")
        elif kv_bytes:
            kw["kv_cache_memory_gib"] = kv_bytes / GIB
            notes.append(f"KV space {kv_bytes / GIB:g} GiB from --kv-cache-memory-bytes")
        elif facts.available_kv_cache_gib is not None:
            kw["kv_cache_memory_gib"] = facts.available_kv_cache_gib
            notes.append(f"KV space {facts.available_kv_cache_gib:g} GiB taken from the log (vLLM-CPU sized it "
                         "itself): only the per-token accounting is checked")
        else:
            raise NotPlannable("vLLM-CPU log does not state the KV cache space")
    else:
        if gpu is None and gpu_memory_gib is None:
            raise NotPlannable("the command does not name the GPU: pass --gpu NAME "
                               "(see `specwise catalog --gpus`) or --gpu-memory-gib")
        kw["gpu"], kw["gpu_memory_gib"] = gpu, gpu_memory_gib
        named = [f"GPU {gpu} (--gpu)" if gpu else "",
                 f"{gpu_memory_gib:g} GiB (--gpu-memory-gib)" if gpu_memory_gib else ""]
        notes.append(" ".join(x for x in named if x))
        if kv_bytes:
            kw["kv_cache_memory_gib"] = kv_bytes / GIB

    tp = _int(cmd_settings.get("tensor_parallel_size"), "--tensor-parallel-size")
    if tp:
        kw["tp"] = tp
    util = cmd_settings.get("gpu_memory_utilization")
    if util is None and server_settings.get("gpu_memory_utilization") and not on_cpu:
        util = server_settings["gpu_memory_utilization"]
        notes.append(f"gpu_memory_utilization={util} (as the server reported it)")
    if util:
        try:
            kw["gpu_memory_utilization"] = float(util)
        except ValueError:
            raise NotPlannable(f"--gpu-memory-utilization {util!r} is not a number") from None
    for field, what in (("max_model_len", "max_model_len"), ("max_num_seqs", "max_num_seqs"),
                        ("max_num_batched_tokens", "max_num_batched_tokens"), ("block_size", "block_size")):
        value = cmd_settings.get(field)
        if value is None and server_settings.get(field) is not None:
            value = server_settings[field]
            notes.append(f"{what}={value} (as the server reported it)")
        if value is not None:
            kw[field] = _int(value, what)
    if cmd.speculative:
        kw.update(_speculative(cmd.speculative, dtype))
    runner_env = cmd.env.get("VLLM_USE_V2_MODEL_RUNNER")
    if runner_env is not None and not cmd.speculative:
        # the like-for-like baseline forces the speculative arm's runner; the V1 runner profiles more memory
        kw["model_runner"] = "v1" if runner_env.strip().lower() in ("0", "false") else "v2"
        notes.append(f"model runner {kw['model_runner']} (VLLM_USE_V2_MODEL_RUNNER={runner_env} in the command)")
    version, where = _version(facts, reported_version)
    if version and parse_version(version) > parse_version(newest_version()):
        notes.append(f"vLLM {version} ({where}) is newer than the newest covered version: planned for "
                     f"{newest_version()}")
    elif version:
        kw["vllm_version"] = version
        notes.append(f"vLLM {version} ({where})")
    else:
        notes.append("vLLM version unknown: planned for the newest covered version")
    try:
        req = PlanRequest(**kw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise NotPlannable(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}") from None
    return req, notes


def _plan_file_budget(plan: PlanResult, role: str) -> tuple[MemoryPlan, Literal["baseline", "speculative"]]:
    memory = plan.memory
    if role == "speculative":
        if memory.speculative is None:
            raise NotPlannable("the --plan file plans no speculation, so it has no speculative budget")
        return memory, "speculative"
    return memory.model_copy(update={"speculative": None}), "baseline"


def _plan_file_mismatches(plan: PlanResult, cmd: ServeCommand, role: str) -> list[str]:
    """Settings the plan file assumed that the command contradicts (each makes the comparison weaker)."""
    s = plan.memory.settings
    out = []
    pairs = [("tensor_parallel_size", s.tp), ("gpu_memory_utilization", s.gpu_memory_utilization),
             ("max_model_len", s.max_model_len), ("max_num_seqs", s.max_num_seqs)]
    for key, planned in pairs:
        value = cmd.settings.get(key)
        if value is not None:
            try:
                differs = float(value) != float(planned)
            except ValueError:
                differs = True
            if differs:
                out.append(f"plan file assumes {key}={planned:g}, the command has {value}")
    if role == "speculative" and cmd.speculative:
        k = cmd.speculative.get("num_speculative_tokens")
        if k is not None and str(k) != str(s.num_speculative_tokens):
            out.append(f"plan file assumes k={s.num_speculative_tokens}, the command has {k}")
    return out


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit == "tokens" else f"{value:,.2f}"


def check_server_memory(
    role: str,
    cmd: ServeCommand,
    log_text: str,
    *,
    gpu: str | None = None,
    gpu_memory_gib: float | None = None,
    plan: PlanResult | None = None,
    server_settings: Mapping[str, str] | None = None,
    reported_version: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MemoryCheck:
    """Compare one launched server's startup log with its plan; never raises (``compared=False`` + reason)."""
    facts = parse_startup_log(log_text)
    if facts.lines_matched == 0:
        return MemoryCheck(compared=False, reason="its startup log has no vLLM memory lines", startup_log=facts)
    budget: Literal["baseline", "speculative"] = "speculative" if role == "speculative" else "baseline"
    try:
        if plan is not None:
            memory, budget = _plan_file_budget(plan, role)
            check = MemoryCheck(compared=True, plan_source="plan_file", budget=budget,
                                plan_request=plan.request, assumptions=_plan_file_mismatches(plan, cmd, role),
                                startup_log=facts)
        else:
            req, notes = plan_request_for_command(cmd, facts, gpu=gpu, gpu_memory_gib=gpu_memory_gib,
                                                  server_settings=server_settings,
                                                  reported_version=reported_version, environ=environ)
            from specwise.plan.memory import plan_memory

            memory = plan_memory(req, suggest=False)
            budget = "speculative" if memory.speculative is not None else "baseline"
            defaults = [f"plan default: {d}" for d in memory.settings.defaults_used]
            check = MemoryCheck(compared=True, plan_source="command", budget=budget, plan_request=req,
                                assumptions=notes + defaults, startup_log=facts)
    except NotPlannable as exc:
        return MemoryCheck(compared=False, reason=str(exc), startup_log=facts)
    except (UserError, ValueError, KeyError, OSError) as exc:
        # plan's own input errors (unknown model, unknown GPU, TP that does not divide the heads, ...)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return MemoryCheck(compared=False, reason=f"cannot plan the command: {text}", startup_log=facts)
    check.comparison = compare_with_log(memory, facts)
    if not check.comparison:
        check.compared = False
        check.reason = "the startup log has no quantity the plan predicts"
        return check
    check.deviations = [
        f"{r.quantity}: logged {_fmt(r.logged, r.unit)} {r.unit}, planned {_fmt(r.predicted, r.unit)} {r.unit} "
        f"(plan error {r.error_fraction:+.1%})"
        for r in capacity_deviations(check.comparison, check.tolerance)
    ]
    return check
