"""Launch commands for a plan: ``vllm serve`` for the chosen vLLM version, and the SGLang equivalent.

Which form, keys and methods a version accepts come from ``catalog/data/vllm_versions.json``
(:mod:`specwise.catalog.vllm_versions`); this module only assembles them. Because vLLM 0.9.2-0.15.x
silently ignores unknown ``--speculative-config`` keys, the emitter itself refuses any key the chosen
version does not know (docs/reference/vllm-speculative-decoding.md §1.2), and any method it cannot run (§1.4-1.5).

Guards: a ``num_speculative_tokens_per_batch_size`` schedule is emitted where the engine honours it
(>= 0.24). On versions whose engine for the method is V0, a schedule of the form "k up to B, then 0"
becomes ``disable_by_batch_size = B + 1`` (V0 reads it). V1 versions before 0.24 have no honoured
guard, so a guarded config is refused instead of emitting a key that does nothing (§1.7).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from specwise.catalog.vllm_versions import VersionFacts, sglang_facts, version_facts
from specwise.errors import UserError
from specwise.schemas.plan import LaunchConfig, ResolvedSettings

# Formats vLLM can produce from a 16-bit checkpoint at load time (--quantization / "quantization").
_AT_LOAD = {"fp8": "fp8", "bnb-4bit": "bitsandbytes"}
# ngram window emitted explicitly (both forms), so the command means the same on every version.
NGRAM_LOOKUP_MAX = 4
NGRAM_LOOKUP_MIN = 2


def validate_schedule(schedule: list[tuple[int, int, int]] | list[list[int]]) -> list[list[int]]:
    """Check a ``[[start, end, k], ...]`` schedule the way vLLM does (inclusive, from 1, no overlap)."""
    rows = [list(map(int, r)) for r in schedule]
    if not rows:
        raise UserError("the k schedule is empty; give [[start, end, k], ...] starting at batch size 1")
    expected = 1
    for start, end, k in rows:
        if len(rows[0]) != 3:
            raise UserError("each schedule row is [start, end, k]")
        if start != expected or end < start or k < 0:
            raise UserError(
                f"schedule row [{start}, {end}, {k}] is invalid: ranges are inclusive, contiguous from 1, "
                "end >= start, and k >= 0"
            )
        expected = end + 1
    return rows


def _disable_threshold(rows: list[list[int]]) -> int | None:
    """Batch size from which a 'k, then 0' schedule turns speculation off; None if not of that shape."""
    for i, (start, _end, k) in enumerate(rows):
        if k == 0:
            if any(r[2] != 0 for r in rows[i:]):
                return None
            return start
    return None


def _knows(facts: VersionFacts, key: str, legacy: bool) -> bool:
    """Whether the version accepts ``key``: as a JSON key, or (legacy form) through a CLI flag."""
    if legacy:
        return key == "method" or facts.legacy_flag(key) is not None
    return facts.knows_key(key)


def _check_keys(facts: VersionFacts, config: dict[str, Any], legacy: bool) -> None:
    unknown = [k for k in config if not _knows(facts, k, legacy)]
    if unknown:
        details = []
        for key in unknown:
            since, until = facts.key_interval(key)
            if since is None:
                details.append(f"'{key}' is not a speculative-config key in any covered version")
            elif until and facts.parsed >= tuple(int(x) for x in until.split(".")):
                details.append(f"'{key}' was removed in {until}")
            else:
                details.append(f"'{key}' arrived in {since}")
        behaviour = {"ignore": "would silently ignore it", "reject": "would reject it"}.get(facts.unknown_keys, "")
        raise UserError(f"vLLM {facts.version} does not know {'; '.join(details)} ({behaviour}); change --vllm-version or drop it")


def _method_check(facts: VersionFacts, method: str) -> None:
    if not facts.method_available(method):
        note = facts.method_note(method)
        raise UserError(
            f"vLLM {facts.version} cannot run method '{method}'" + (f": {note}" if note else "")
            + "; pick another --vllm-version or method"
        )
    if method not in facts.engine_by_method:
        raise UserError(f"vLLM {facts.version} has no engine that runs '{method}'; pick another version")


def speculative_config_dict(
    s: ResolvedSettings,
    draft_model: str | None,
    facts: VersionFacts,
    guard_schedule: list[list[int]] | None = None,
    extra_keys: dict[str, Any] | None = None,
    legacy: bool = False,
    heterogeneous_vocab: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The ``--speculative-config`` mapping for ``s`` on ``facts.version`` (keys checked), plus notes.

    ``legacy=True`` checks the keys against the version's legacy flags instead (< 0.8.3).
    """
    assert s.method is not None
    notes: list[str] = []
    cfg: dict[str, Any] = {"method": facts.method_name(s.method)}
    if s.method in ("draft_model", "eagle", "eagle3"):
        cfg["model"] = draft_model
    cfg["num_speculative_tokens"] = s.num_speculative_tokens
    if s.method == "ngram":
        cfg["prompt_lookup_max"] = NGRAM_LOOKUP_MAX
        cfg["prompt_lookup_min"] = NGRAM_LOOKUP_MIN
    if s.draft_tp is not None and s.draft_tp != s.tp:
        cfg["draft_tensor_parallel_size"] = s.draft_tp
    if s.method != "mtp" and s.draft_quantize_at_load and s.draft_quant in _AT_LOAD:
        cfg["quantization"] = _AT_LOAD[s.draft_quant]
    if heterogeneous_vocab and s.method == "draft_model":
        if _knows(facts, "use_heterogeneous_vocab", legacy):
            cfg["use_heterogeneous_vocab"] = True
            notes.append("use_heterogeneous_vocab=true: draft and target vocab_size differ only by padding")
        else:
            notes.append(
                f"draft and target vocab_size differ (padding only); vLLM {facts.version} has no "
                "use_heterogeneous_vocab (0.25+) and may refuse the pair: use vLLM >= 0.25 or an equal-size draft"
            )
    if guard_schedule:
        honoured_disable = _knows(facts, "disable_by_batch_size", legacy) and facts.engine_by_method.get(s.method) == "v0"
        if _knows(facts, "num_speculative_tokens_per_batch_size", legacy):
            cfg["num_speculative_tokens_per_batch_size"] = guard_schedule
        else:
            threshold = _disable_threshold(guard_schedule)
            if honoured_disable and threshold is not None:
                cfg["disable_by_batch_size"] = threshold
                notes.append(
                    f"guard: vLLM {facts.version} runs {s.method} on V0, which reads disable_by_batch_size; "
                    f"speculation turns off from batch size {threshold} (the schedule's k values above 0 "
                    f"collapse to k={s.num_speculative_tokens})"
                )
            elif _knows(facts, "disable_by_batch_size", legacy) and threshold is not None:
                raise UserError(
                    f"vLLM {facts.version} accepts disable_by_batch_size but its V1 engine never reads it "
                    "(docs/reference/vllm-speculative-decoding.md §1.7); a per-batch-size k schedule needs vLLM >= 0.24"
                )
            else:
                raise UserError(
                    f"vLLM {facts.version} has no batch-size guard its engine honours; "
                    "num_speculative_tokens_per_batch_size needs vLLM >= 0.24"
                )
    if extra_keys:
        cfg.update(extra_keys)
    if s.method == "mtp" and s.num_speculative_tokens > 1:
        notes.append("MTP with k > 1 reruns the same MTP layer, which may lower acceptance (vLLM warns)")
    _check_keys(facts, cfg, legacy)
    return cfg, notes


def _base_args(s: ResolvedSettings, target_model: str, facts: VersionFacts) -> list[str]:
    args = [target_model, "--tensor-parallel-size", str(s.tp),
            "--gpu-memory-utilization", f"{s.gpu_memory_utilization:g}",
            "--max-model-len", str(s.max_model_len), "--max-num-seqs", str(s.max_num_seqs)]
    if s.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8"]
    if s.kv_cache_memory_gib is not None:
        if not facts.knows_flag("--kv-cache-memory-bytes"):
            raise UserError(f"vLLM {facts.version} has no --kv-cache-memory-bytes (0.10.2+); use --gpu-memory-utilization")
        args += ["--kv-cache-memory-bytes", str(int(s.kv_cache_memory_gib * 2**30))]
    if s.target_quantize_at_load and s.target_quant in _AT_LOAD:
        args += ["--quantization", _AT_LOAD[s.target_quant]]
    return args


def _quant_notes(s: ResolvedSettings) -> list[str]:
    notes = []
    for who, quant, at_load in (("target", s.target_quant, s.target_quantize_at_load),
                                ("draft", s.draft_quant, s.draft_quantize_at_load)):
        if at_load and quant not in _AT_LOAD and quant not in ("bf16", "fp16"):
            notes.append(f"the {who} is planned as {quant}: serve a pre-quantised {quant} checkpoint "
                         "(vLLM cannot quantise to it at load time)")
    return notes


def _legacy_args(s: ResolvedSettings, draft_model: str | None, facts: VersionFacts, cfg: dict[str, Any]) -> list[str]:
    args: list[str] = []
    flag_values = dict(cfg)
    flag_values.pop("method", None)
    if s.method == "ngram":
        flag_values["model"] = "[ngram]"
    for key, value in flag_values.items():
        flag = facts.legacy_flag(key)
        if flag is None:
            raise UserError(f"vLLM {facts.version} has no legacy flag for '{key}'; pick a version >= 0.8.2")
        args += [flag, str(value)]
    return args


def emit_launch_config(
    s: ResolvedSettings,
    target_model: str,
    draft_model: str | None,
    guard_schedule: list[tuple[int, int, int]] | list[list[int]] | None = None,
    extra_keys: dict[str, Any] | None = None,
    heterogeneous_vocab: bool = False,
) -> LaunchConfig:
    """Exact ``vllm serve`` command for ``s.vllm_version`` and the SGLang equivalent.

    ``target_model`` / ``draft_model`` are the names to put on the command line (what the user
    serves, e.g. a ``-FP8`` checkpoint). ``guard_schedule`` is ``[[start, end, k], ...]``.
    """
    facts = version_facts(s.vllm_version)
    args = _base_args(s, target_model, facts)
    notes: list[str] = _quant_notes(s)
    if s.instances > 1:
        notes.append(f"{s.gpus} GPUs / TP {s.tp}: run {s.instances} instances (or --data-parallel-size {s.instances})")
    if s.method is None:
        return LaunchConfig(vllm_version=facts.version, vllm_command=shlex.join(["vllm", "serve", *args]),
                            vllm_args=args, config_form="none", sglang_command=sglang_command(s, target_model, None),
                            notes=notes)
    _method_check(facts, s.method)
    rows = validate_schedule(guard_schedule) if guard_schedule else None
    use_json = "json" in facts.config_forms and (facts.json_methods is None or s.method in facts.json_methods)
    # The mapping is built in both forms: it carries the key checks and the guard logic.
    cfg, cfg_notes = speculative_config_dict(s, draft_model, facts, rows, extra_keys, legacy=not use_json,
                                             heterogeneous_vocab=heterogeneous_vocab)
    notes += cfg_notes
    if use_json:
        args += ["--speculative-config", json.dumps(cfg)]
        form = "json"
    else:
        args += _legacy_args(s, draft_model, facts, cfg)
        form = "legacy_flags"
        if "json" in facts.config_forms:
            notes.append(facts.note)
    modes = facts.engine_modes(s.method)
    if modes is not None:
        # Settings the version changes when speculation is on (catalog "engine_modes"): emit the flags that keep
        # the default where the version allows, and say what remains (the speculative server pays it).
        args += modes.avoid_flags
        for flag in modes.avoid_flags:
            notes.append(f"{flag}: vLLM {facts.version} would otherwise turn it off for {s.method} (measured on one "
                         "H200, vLLM 0.26, 8B/1B: TPOT P50 at 128 req/s 11.5 ms with it vs 12.5-15.3 ms without, "
                         "about the same below; benchmarks/results/gpu_h200_vllm0.26)")
        remaining = [sw for sw in modes.switches if not any(f.lstrip("-").replace("-", " ") in sw for f in modes.avoid_flags)]
        if remaining:
            notes.append(f"vLLM {facts.version} with {s.method} still switches: {'; '.join(remaining)}: the default "
                         "baseline runs a different engine; compare like for like (bench --like-for-like)")
    engine = facts.engine_by_method.get(s.method)
    if engine == "v0" and facts.parsed >= (0, 8, 0):
        notes.append(f"vLLM {facts.version} runs {s.method} speculation on the V0 engine (V0 metrics and accounting)")
    if facts.unknown_keys == "ignore":
        notes.append(f"vLLM {facts.version} silently ignores unknown speculative-config keys; only known keys were emitted")
    if facts.parsed < (0, 6, 0):
        notes.append("vLLM 0.4.x-0.5.x docs also pass --use-v2-block-manager for speculative decoding")
    return LaunchConfig(
        vllm_version=facts.version,
        vllm_command=shlex.join(["vllm", "serve", *args]),
        vllm_args=args,
        speculative_config=cfg,
        config_form=form,
        sglang_command=sglang_command(s, target_model, draft_model),
        notes=notes,
    )


def sglang_command(s: ResolvedSettings, target_model: str, draft_model: str | None) -> str:
    """``python -m sglang.launch_server`` equivalent (SGLang 0.5.23 flags, §6)."""
    sg = sglang_facts()
    args = ["python", "-m", "sglang.launch_server", "--model-path", target_model, "--tp", str(s.tp),
            "--mem-fraction-static", f"{s.gpu_memory_utilization:g}", "--context-length", str(s.max_model_len),
            "--max-running-requests", str(s.max_num_seqs)]
    if s.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8_e4m3"]
    if s.method is not None:
        args += ["--speculative-algorithm", sg["algorithms"][s.method]]
        if s.method in ("draft_model", "eagle", "eagle3") and draft_model:
            args += ["--speculative-draft-model-path", draft_model]
        if s.method != "ngram":
            args += ["--speculative-num-steps", str(s.num_speculative_tokens), "--speculative-eagle-topk", "1"]
        args += ["--speculative-num-draft-tokens", str(s.num_speculative_tokens + 1)]
    return shlex.join(args)
