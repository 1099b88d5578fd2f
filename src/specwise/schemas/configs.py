"""Stage configurations shared through the schema: :class:`SimulateConfig`, :class:`EstimateConfig`.

A config validates itself (bad values are one-line :class:`~specwise.errors.UserError` messages naming the
flag), is what ``--config FILE`` (YAML or JSON of the same model) loads and what ``--out`` writes back next to
the results, and is recorded in ``RunResult.inputs`` so that a run can be repeated exactly. The stage takes
it as its interface: ``specwise.simulate.stage.run(SimulateConfig)``; ``specwise estimate`` builds its settings
from an :class:`EstimateConfig`. The bench's ``BenchConfig`` lives in
the bench package and is recorded in ``RunResult.inputs.bench`` as JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from specwise.errors import UserError
from specwise.schemas.acceptance import check_unconditional_rates
from specwise.schemas.base import SpecwiseModel
from specwise.schemas.limits import (
    Burstiness,
    Concurrency,
    DraftK,
    FiniteFloat,
    Heterogeneity,
    Qps,
    Seconds,
    Seed,
    SimRequests,
    Temperature,
    Tokens,
    check_flag,
)

# a traffic share's weight: positive and finite
Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]

class SimulateConfig(SpecwiseModel):
    """Every input of a ``simulate`` run (``specwise simulate --config FILE`` reads this model)."""

    target: str | None = Field(None, description="target model; None = the demo deployment "
                               "(Llama-3.1-70B-Instruct with Llama-3.2-1B-Instruct on 4x H100)")
    draft: str | None = None
    method: str | None = Field(None, description="vLLM method; None = draft_model with a draft, else eagle3")
    gpu: str = "H100"
    tp: int | None = Field(None, ge=1)
    draft_tp: int = Field(1, ge=1)
    quantization: str | None = None
    vllm_version: str | None = None
    k: int | None = Field(None, description="num_speculative_tokens; None = 4 for draft models, 3 otherwise")
    acceptance_rates: list[float] | None = Field(None, description="unconditional per-position a_1..a_k "
                                                 "(vLLM's per-position metric meaning)")
    acceptance_length: float | None = Field(None, description="mean acceptance length, bonus token included")
    acceptance_profile: str | None = Field(None, description="AcceptanceProfile JSON path (specwise estimate)")
    heterogeneity: Heterogeneity | None = None
    prompt_len: str | None = Field(None, description="N | uniform:LO:HI | normal:MEAN:CV | lognormal:MEAN:CV")
    output_len: str | None = None
    qps: list[Qps] | None = Field(None, description="open loop: request rates to sweep (req/s)")
    concurrency: list[Concurrency] | None = Field(None, description="closed loop: requests kept in flight")
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: Burstiness = 1.0
    temperature_mix: dict[Temperature, Weight] | None = Field(None, description="temperature -> weight of the "
                                                              "traffic")
    trace: str | None = Field(None, description="JSONL/CSV trace (timestamp, prompt_tokens, output_tokens)")
    dataset: str | None = Field(None, description="JSONL/CSV of prompt_tokens, output_tokens pairs")
    duration_s: Seconds | None = None
    num_requests: SimRequests | None = None
    max_num_seqs: Tokens = 256
    max_num_batched_tokens: Tokens = 8192
    kv_capacity_tokens: Tokens | None = None
    step_time_model: str | None = Field(None, description="StepTimeModel JSON path for the target")
    calibration: str | None = Field(None, description="named calibration (catalog), 'none' = roofline; None = the "
                                    "one matching GPU, vLLM version and model shapes")
    calibration_host: str | None = Field(None, description="host class of the calibration's draft pass (e.g. "
                                         "'slow'); None = the class it was fitted on")
    like_for_like: bool = Field(False, description="run the baseline in the speculative server's engine mode")
    async_scheduling: bool | None = Field(None, description="--async-scheduling (True) / --no-async-scheduling "
                                          "(False) of the speculative server; None = the version's default")
    oracle: bool = True
    k_sweep: list[DraftK] | None = None
    seed: Seed = 0

    @model_validator(mode="after")
    def _check(self) -> SimulateConfig:
        if self.k is not None and self.k < 1:
            raise UserError("--k must be >= 1 (k=0 is the baseline, which is always simulated)")
        if self.k is not None:
            check_flag("--k", self.k, DraftK)
        if self.qps is not None and (not self.qps or any(q <= 0 for q in self.qps)):
            raise UserError("--qps values must be > 0")
        if self.concurrency is not None:
            if self.qps or self.trace:
                raise UserError("give either --concurrency (closed loop) or --qps/--trace (open loop)")
            if not self.concurrency or any(c < 1 for c in self.concurrency):
                raise UserError("--concurrency values must be >= 1")
        if self.k_sweep is not None and any(x < 1 for x in self.k_sweep):
            raise UserError("--k-sweep values must be >= 1")
        given = [x is not None for x in (self.acceptance_rates, self.acceptance_length, self.acceptance_profile)]
        if sum(given) > 1:
            raise UserError("give only one of --acceptance-rates, --acceptance-length, --acceptance-profile")
        if self.acceptance_rates is not None:
            check_unconditional_rates(self.acceptance_rates, "--acceptance-rates")
        if self.temperature_mix is not None and any(w <= 0 for w in self.temperature_mix.values()):
            raise UserError("--temperature-mix: weights must be > 0")
        if self.vllm_version:
            from specwise.catalog.vllm_versions import parse_version

            try:
                parse_version(self.vllm_version)
            except ValueError:
                raise UserError(f"--vllm-version: expected a version like 0.33.0, got '{self.vllm_version}'") \
                    from None
        return self


class EstimateConfig(SpecwiseModel):
    """Every input of an ``estimate`` run (``specwise estimate --config FILE`` reads this model).

    Written as ``config.json`` into the output directory, so ``--config DIR/config.json`` repeats the run.
    """

    target: str = Field(min_length=1, description="HF directory, .gguf file, cached HF id, or smollm2-135m")
    prompts: str = Field(min_length=1, description="prompt file (JSONL, ShareGPT JSON, Spec-Bench JSONL)")
    draft: str | None = None
    draft_layers: int | None = Field(None, ge=1, description="self-speculation: the target's first N layers")
    draft_quantize: str | None = Field(None, description="int8 | int4")
    target_quantize: str | None = Field(None, description="int8 | int4")
    method: str = Field("auto", description="draft_model, ngram, both, or a comma list; auto: draft_model with a "
                        "draft, else ngram")
    temperatures: list[Temperature] = Field(default_factory=lambda: [0.0, 0.3, 0.7, 1.0])
    top_p: float = 1.0
    top_k: int = Field(0, description="0 or -1 = off")
    k_max: int = Field(8, ge=1, le=16)
    k: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(128, ge=2)
    context_temperatures: list[Temperature] | None = Field(None, description="None = auto")
    draft_sample_method: str = Field("greedy", description="greedy | probabilistic")
    prompt_lookup_min: int = Field(5, ge=1)
    prompt_lookup_max: int = Field(5, ge=1)
    vllm_version: str | None = Field(None, description="n-gram: propose as this vLLM version does (catalog "
                                     "ngram_proposer facts); None: the newest covered")
    max_model_len: int | None = Field(None, ge=2, le=1 << 24, description="n-gram: the server's max_model_len "
                                      "(drafts trimmed near it as vLLM does); None: no limit")
    cost_ratio: FiniteFloat | None = Field(None, ge=0)
    gpu: str | None = None
    tp: int | None = Field(None, ge=1)
    validate_run: bool = Field(False, description="--validate: also run real speculative decoding")
    validate_temperatures: list[Temperature] | None = Field(None, description="None = all temperatures")
    limit: int | None = Field(None, ge=1)
    chat: bool = False
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = Field(0, ge=0, description="0: 32 on CUDA, 8 on CPU")
    threads: int = Field(0, ge=0)
    seed: Seed = 0

    @model_validator(mode="after")
    def _check(self) -> EstimateConfig:
        for flag, temps in (("--temperatures", self.temperatures), ("--context-temperatures",
                                                                     self.context_temperatures),
                            ("--validate-temperatures", self.validate_temperatures)):
            if temps is not None and (not temps or any(t < 0 for t in temps)):
                raise UserError(f"{flag} needs at least one temperature in [0, 2]")
        self.temperatures = sorted(set(self.temperatures))
        if not 0.0 < self.top_p <= 1.0:
            raise UserError("--top-p must be in (0, 1] (1 = off)")
        if self.top_k < -1:
            raise UserError("--top-k must be a positive number of tokens, or 0 / -1 for off")
        if self.prompt_lookup_min > self.prompt_lookup_max:
            raise UserError("--prompt-lookup-min must not exceed --prompt-lookup-max")
        if self.k is not None and self.k > self.k_max:
            raise UserError("--k must not exceed --k-max")
        if self.validate_run and not set(self.validate_temperatures or self.temperatures) <= set(self.temperatures):
            raise UserError("--validate-temperatures must be among --temperatures")
        if self.vllm_version is not None:
            from specwise.catalog.vllm_versions import ngram_proposer_facts

            ngram_proposer_facts(self.vllm_version)  # an unknown or uncovered version fails before models load
        if self.draft_sample_method not in ("greedy", "probabilistic"):
            raise UserError("--draft-sample-method is greedy or probabilistic")
        for flag, value in (("--draft-quantize", self.draft_quantize), ("--target-quantize", self.target_quantize)):
            if value is not None and value not in ("int8", "int4"):
                raise UserError(f"{flag} is int8 or int4")
        return self
