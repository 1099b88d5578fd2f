"""Parse a vLLM server's startup log and compare its memory facts with a plan.

Recognised lines (V1 and V0 wordings; `Engine 000:` / `(VllmWorker rank=N)` prefixes are fine):

* ``Model loading took 14.9889 GiB and 5.1 seconds`` (V1), ``Loading model weights took 14.9595 GB`` (V0)
* ``Available KV cache memory: 52.33 GiB`` (V1)
* ``GPU KV cache size: 428,656 tokens`` (V1; ``CPU KV cache size`` on vLLM-CPU, where 0.32 also puts the
  maximum-concurrency sentence on the same line)
* ``Explicitly set (1.0/17.59) GiB for KV cache on node 0`` (vLLM-CPU: the KV space it was given, then the
  node's total memory), ``Auto set (X/Y) GiB for KV cache on node 0, ...`` (vLLM-CPU without an explicit size)
* ``Maximum concurrency for 8,192 tokens per request: 52.33x`` (V1, late V0)
* ``Graph capturing finished in 13 secs, took 0.53 GiB``
* ``# GPU blocks: 27615, # CPU blocks: 2048`` / ``# cuda blocks: ...`` (V0)
* profiling summaries: ``model weights take 14.99GiB; non_torch_memory takes 0.26GiB; PyTorch activation
  peak memory takes 1.23GiB; the rest of the memory reserved for KV Cache is 54.71GiB`` (V0) and
  ``torch peak memory increase: 1.23GiB; non-torch forward increase memory: 0.1GiB`` (early V1)

:func:`extract_engine_settings` adds the engine settings (scheduler limits, async scheduling, CUDA graphs,
model runner, speculative config, engine generation) that the bench compares between its arms; it is the
one startup-log parser of both stages.
"""

from __future__ import annotations

import re

from specwise.schemas.plan import CAPACITY_TOLERANCE, LogComparison, MemoryPlan, StartupLogFacts

_NUM = r"([\d][\d,]*(?:\.\d+)?)"

# Capacity quantities whose predicted-vs-logged error says the plan does not describe the server: the plan
# computes them (weights from parameter counts, KV from bytes per token and the budget); the other rows
# (activation peak, non-torch, CUDA graphs) are assumed sizes of a few hundred MiB, whose relative error is
# large without meaning much. The tolerance (CAPACITY_TOLERANCE, schemas/plan.py) says why 10 %.
CAPACITY_QUANTITIES = ("weights per GPU (model loading)", "KV cache memory", "KV cache tokens")


# Largest number a memory line may carry (GiB, tokens, blocks): 10^15 is far above any machine, and a longer
# digit string (a corrupted or hostile log: 400 digits parse as inf) would overflow int() and every ratio.
_MAX_LOGGED = 1e15


class _Implausible(ValueError):
    """A matched line whose number cannot be a real memory fact; the line is skipped with a note."""


def _f(text: str) -> float:
    value = float(text.replace(",", ""))
    if not value <= _MAX_LOGGED:
        raise _Implausible(text if len(text) <= 24 else text[:21] + "...")
    return value


_PATTERNS: dict[str, re.Pattern[str]] = {
    "model_loading": re.compile(r"Model loading took " + _NUM + r" ?GiB"),
    "model_loading_v0": re.compile(r"Loading model weights took " + _NUM + r" ?GB"),
    "available_kv": re.compile(r"Available KV cache memory: " + _NUM + r" ?GiB"),
    "kv_tokens": re.compile(r"(GPU|CPU|XPU|TPU) KV cache size: " + _NUM + r" tokens"),
    "cpu_kv_space": re.compile(r"(Explicitly|Auto) set \(" + _NUM + r"/" + _NUM + r"\) GiB for KV cache"),
    "gpu_blocks": re.compile(r"# (?:GPU|gpu|cuda|CUDA) blocks: " + _NUM),
    "max_concurrency": re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r"x"),
    "cudagraph": re.compile(r"Graph capturing finished in \S+ secs?, took " + _NUM + r" ?GiB"),
    "activation_v0": re.compile(r"PyTorch activation peak memory takes " + _NUM + r" ?GiB"),
    "activation_v1": re.compile(r"torch peak memory increase: " + _NUM + r" ?GiB"),
    "non_torch_v0": re.compile(r"non_torch_memory takes " + _NUM + r" ?GiB"),
    "non_torch_v1": re.compile(r"non-torch forward increase memory: " + _NUM + r" ?GiB"),
    "kv_profiled_v0": re.compile(r"reserved for KV Cache is " + _NUM + r" ?GiB"),
    "version": re.compile(r"(?:vLLM API server version|Initializing a V[01] LLM engine \(v|vLLM version) ?v?(\d+\.\d+\.\d+[\w.+-]*)"),
    "v1_engine": re.compile(r"V1 LLM engine|EngineCore|VllmWorker|KV cache size: "),
    "v0_engine": re.compile(r"# (?:GPU|gpu|cuda|CUDA) blocks:|V0 LLM engine|Initializing an LLM engine"),
}


def parse_startup_log(text: str) -> StartupLogFacts:
    """Memory facts from a vLLM startup log (per rank values: the largest, i.e. the fullest GPU).

    A matched line whose number is out of range (:data:`_MAX_LOGGED`) is ignored with a note in ``notes``.
    """
    facts: dict[str, object] = {}
    notes: list[str] = []
    matched = 0
    v1 = v0 = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        found: dict[str, object] = {}
        maxima: dict[str, float] = {}
        try:
            hit = _match_line(line, found, maxima)
        except _Implausible as exc:
            notes.append(f"line {lineno}: {exc} is not a plausible size; line ignored")
            continue
        facts.update(found)
        for key, value in maxima.items():  # several ranks log the same line: keep the fullest GPU
            current = facts.get(key)
            facts[key] = value if current is None else max(float(current), value)  # type: ignore[arg-type]
        if (m := _PATTERNS["version"].search(line)) and "vllm_version" not in facts:
            facts["vllm_version"] = m.group(1).rstrip(").,")
        v1 = v1 or bool(_PATTERNS["v1_engine"].search(line))
        v0 = v0 or bool(_PATTERNS["v0_engine"].search(line))
        matched += hit
    engine = "v1" if v1 else ("v0" if v0 else "unknown")
    return StartupLogFacts(engine=engine, lines_matched=matched, notes=notes, **facts)  # type: ignore[arg-type]


def _match_line(line: str, facts: dict[str, object], maxima: dict[str, float]) -> bool:
    """The memory facts of one line into ``facts`` (last value wins) and ``maxima`` (largest over ranks wins);
    whether the line had any. Raises :class:`_Implausible` when one of its numbers is out of range."""
    hit = False
    if m := _PATTERNS["model_loading"].search(line) or _PATTERNS["model_loading_v0"].search(line):
        # V0 prints GB but means GiB (it divides by 2**30)
        maxima["model_loading_gib"] = _f(m.group(1))
        hit = True
    if m := _PATTERNS["available_kv"].search(line):
        facts["available_kv_cache_gib"] = _f(m.group(1))
        hit = True
    if m := _PATTERNS["cpu_kv_space"].search(line):
        facts["available_kv_cache_gib"] = _f(m.group(2))
        facts["cpu_memory_gib"] = _f(m.group(3))
        facts["cpu_kv_space_auto"] = m.group(1) == "Auto"
        hit = True
    if m := _PATTERNS["kv_tokens"].search(line):
        facts["kv_cache_device"] = m.group(1)
        facts["gpu_kv_cache_tokens"] = int(_f(m.group(2)))
        hit = True
    if m := _PATTERNS["gpu_blocks"].search(line):
        facts["num_gpu_blocks"] = int(_f(m.group(1)))
        hit = True
    if m := _PATTERNS["max_concurrency"].search(line):
        facts["max_concurrency_tokens"] = int(_f(m.group(1)))
        facts["max_concurrency"] = _f(m.group(2))
        hit = True
    if m := _PATTERNS["cudagraph"].search(line):
        maxima["cudagraph_gib"] = _f(m.group(1))
        hit = True
    if m := _PATTERNS["activation_v0"].search(line) or _PATTERNS["activation_v1"].search(line):
        maxima["activation_peak_gib"] = _f(m.group(1))
        hit = True
    if m := _PATTERNS["non_torch_v0"].search(line) or _PATTERNS["non_torch_v1"].search(line):
        maxima["non_torch_gib"] = _f(m.group(1))
        hit = True
    if m := _PATTERNS["kv_profiled_v0"].search(line):
        facts["kv_cache_gib_profiled"] = _f(m.group(1))
        hit = True
    return hit


# Engine settings (not memory) that the bench compares between its two arms; the memory lines above are read
# by parse_startup_log, whose facts come first. The KV lines appear here again in their looser wordings (no
# device prefix, "# CPU blocks", V0's "LLM engine (v...)") so that a log parse_startup_log misses still names
# its capacity and version.
_SETTING_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("kv_cache_tokens", re.compile(r"KV cache size:\s*([\d,]+)\s*tokens")),
    ("kv_cache_memory_gib", re.compile(r"Available KV cache memory:\s*([\d.]+)\s*GiB")),
    ("num_gpu_blocks", re.compile(r"# (?:GPU|CPU) blocks:\s*(\d+)")),
    ("max_concurrency", re.compile(r"Maximum concurrency for [\d,]+ tokens per request:\s*([\d.]+)x")),
    ("async_scheduling", re.compile(r"[Aa]sync(?:hronous)?[ _]scheduling (?:is )?(enabled|disabled)")),
    ("max_num_batched_tokens", re.compile(r"[Cc]hunked prefill is enabled with max_num_batched_tokens=(\d+)")),
    ("cudagraph_mode", re.compile(r"cudagraph_mode['\"]?\s*[:=]\s*<?(?:CUDAGraphMode\.)?['\"]?(\w+)")),
    ("enforce_eager", re.compile(r"enforce_eager=(True|False)")),
    ("max_num_seqs", re.compile(r"max_num_seqs=(\d+)")),
    ("gpu_memory_utilization", re.compile(r"gpu_memory_utilization=([\d.]+)")),
    ("version", re.compile(r"vLLM API server version ([\w.+-]+)")),
    ("version", re.compile(r"LLM engine \(v([\w.+-]+)\)")),
]


# StartupLogFacts field -> the setting name extract_engine_settings uses
_FACT_NAMES = {"gpu_kv_cache_tokens": "kv_cache_tokens", "vllm_version": "version", "engine": "engine_generation"}


def extract_engine_settings(text: str) -> dict[str, str]:
    """Engine settings from a startup log as ``name -> value`` strings (last occurrence wins).

    The memory facts of :func:`parse_startup_log` first (renamed to the bench's setting names), then the
    engine flags, model runner, speculative config and engine generation the bench compares between arms.
    """
    out: dict[str, str] = {}
    for key, value in parse_startup_log(text).model_dump().items():
        if value is None or isinstance(value, (dict, list)) or key == "lines_matched":
            continue
        name = _FACT_NAMES.get(key, key)
        if name == "engine_generation":
            if str(value).lower() not in ("v0", "v1"):
                continue
            value = str(value).upper()
        out[name] = str(value)
    for name, pat in _SETTING_PATTERNS:
        matches = pat.findall(text)
        if matches and name not in out:
            out[name] = matches[-1].replace(",", "")  # a restarted engine logs again: the last one is current
    if "async_scheduling" in out:
        out["async_scheduling"] = out["async_scheduling"].lower()
    # "Model Runner V2 requires Triton; using the V1 model runner instead." (vLLM-CPU 0.32): the fallback
    # line names the runner actually used, so it wins over any mention of V2.
    fallback = re.findall(r"using the (V1|V2) model runner", text, flags=re.IGNORECASE)
    if fallback:
        out.setdefault("model_runner", fallback[-1].lower())
    elif re.search(r"[Uu]sing Model Runner V2|gpu/model_runner\.py|worker/gpu/", text):
        out.setdefault("model_runner", "v2")
    elif re.search(r"GPUModelRunner|gpu_model_runner\.py|cpu_model_runner\.py", text):
        out.setdefault("model_runner", "v1")
    for flag, name in (("enable_chunked_prefill", "chunked_prefill"), ("enable_prefix_caching",
                                                                         "enable_prefix_caching")):
        m = re.findall(flag + r"=(True|False)", text)
        if m and name not in out:
            out[name] = ("enabled" if m[-1] == "True" else "disabled") if name == "chunked_prefill" else m[-1]
    spec = re.findall(r"speculative_config=SpeculativeConfig\(([^)]*)\)", text)
    if spec:
        fields = dict(re.findall(r"(\w+)=('[^']*'|[^,\s]+)", spec[-1]))
        if "method" in fields:
            out.setdefault("spec_method", fields["method"].strip("'"))
        k = fields.get("num_spec_tokens") or fields.get("num_speculative_tokens")
        if k and k.isdigit():
            out.setdefault("spec_k", k)
        if "rejection_sample_method" in fields:
            out.setdefault("rejection_sample_method", fields["rejection_sample_method"].strip("'"))
    if re.search(r"V1 LLM engine|EngineCore", text):
        out.setdefault("engine_generation", "V1")
    elif "LLMEngine" in text and "Initializing an LLM engine" in text:
        out.setdefault("engine_generation", "V0")
    return out


def compare_with_log(plan: MemoryPlan, facts: StartupLogFacts) -> list[LogComparison]:
    """Predicted vs logged for every quantity both sides have (speculative budget when configured)."""
    budget = plan.speculative or plan.baseline
    block = plan.settings.block_size
    logged_tokens = facts.gpu_kv_cache_tokens
    if logged_tokens is None and facts.num_gpu_blocks is not None:
        logged_tokens = facts.num_gpu_blocks * block
    logged_kv_gib = facts.available_kv_cache_gib if facts.available_kv_cache_gib is not None else facts.kv_cache_gib_profiled
    pairs: list[tuple[str, str, float, float | None]] = [
        ("weights per GPU (model loading)", "GiB", budget.weights_gib_per_gpu, facts.model_loading_gib),
        ("KV cache memory", "GiB", budget.kv_cache_gib, logged_kv_gib),
        ("KV cache tokens", "tokens", float(budget.kv_cache_tokens), None if logged_tokens is None else float(logged_tokens)),
        ("activation peak", "GiB", budget.activation_gib, facts.activation_peak_gib),
        ("non-torch memory", "GiB", budget.overhead_gib, facts.non_torch_gib),
        ("CUDA graph memory", "GiB", budget.cudagraph_gib, facts.cudagraph_gib),
    ]
    if facts.max_concurrency is not None and facts.max_concurrency_tokens:
        predicted = budget.kv_cache_tokens / facts.max_concurrency_tokens
        pairs.append((f"max concurrency at {facts.max_concurrency_tokens} tokens", "x", predicted, facts.max_concurrency))
    out = []
    for name, unit, predicted, logged in pairs:
        if logged is None:
            continue
        err = predicted - logged
        out.append(LogComparison(quantity=name, unit=unit, predicted=predicted, logged=logged, error=err,
                                 error_fraction=err / logged if logged else None))
    return out


def capacity_deviations(rows: list[LogComparison], tolerance: float = CAPACITY_TOLERANCE) -> list[LogComparison]:
    """The capacity rows (:data:`CAPACITY_QUANTITIES`) whose relative error exceeds ``tolerance``."""
    return [r for r in rows if r.quantity in CAPACITY_QUANTITIES and r.error_fraction is not None
            and abs(r.error_fraction) > tolerance]
