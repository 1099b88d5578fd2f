"""Results of ``specwise estimate``: acceptance predicted offline from the models, and its validation.

Field conventions follow vLLM V1 (see :mod:`specwise.schemas.acceptance`):

* ``acceptance_rate`` = accepted draft tokens / drafted tokens at ``acceptance_rate_k`` drafts per step;
* ``expected_tokens_per_step[k-1]`` = tokens emitted per verify step (bonus token included, steps without
  a proposal counted) with k drafts per step;
* ``per_position_acceptance[i]`` = unconditional a_i = steps whose i-th draft was accepted / steps that
  drafted (vLLM's per-position metric), at ``k_max``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specwise.schemas.base import Source, SpecwiseModel


class EstimateSettings(SpecwiseModel):
    """Everything that determines an estimate; a resumed run must match it."""

    target: str
    draft: str | None = None
    draft_layers: int | None = None
    draft_quantize: str | None = None
    target_quantize: str | None = None
    methods: list[str]
    temperatures: list[float]
    k_max: int
    max_new_tokens: int
    context_temperatures: list[float] = Field(description="temperatures the target generates continuations at; "
                                              "each evaluated temperature uses the nearest")
    prompt_lookup_min: int
    prompt_lookup_max: int
    seed: int
    prompts: str
    prompt_limit: int | None = None
    wrap_plain_as_chat: bool = False
    top_p: float = Field(1.0, description="request top_p applied at every temperature > 0 (1 = off): the "
                         "target's continuations are sampled with it and the target side of verification is "
                         "truncated by it, as vLLM does")
    top_k: int = Field(0, description="request top_k applied at every temperature > 0 (0 = off), like top_p")
    vllm_version: str | None = Field(None, description="n-gram: the vLLM version whose proposer the replay "
                                     "follows (catalog ngram_proposer rules); None: the newest covered")
    max_model_len: int | None = Field(None, description="n-gram: the server's max_model_len (drafts trimmed "
                                      "near it as vLLM does); None: no limit")


class CategoryEstimate(SpecwiseModel):
    category: str
    num_requests: int
    acceptance_rate: float | None
    acceptance_rate_p10: float | None = None
    acceptance_rate_p50: float | None = None
    acceptance_rate_p90: float | None = None
    expected_tokens_per_step: list[float]
    conditional_acceptance: list[float] = Field(default_factory=list, description="alpha_i at k_max")
    match_probability: float = 1.0
    heterogeneity: float = 0.0


class TemperatureEstimate(SpecwiseModel):
    """Estimated acceptance of one method at one temperature."""

    temperature: float
    acceptance_rate: float | None = Field(description="accepted/drafted at acceptance_rate_k, the verification "
                                          "named by the method entry")
    acceptance_rate_k: int
    acceptance_rate_argmax_draft: float | None = Field(
        description="accepted/drafted at acceptance_rate_k when the draft proposes argmax q (vLLM V1 "
        "draft_sample_method=greedy; the only verification for n-gram)")
    acceptance_rate_p10: float | None = None
    acceptance_rate_p50: float | None = None
    acceptance_rate_p90: float | None = None
    acceptance_rate_by_k: list[float | None]
    expected_tokens_per_step: list[float] = Field(description="index k-1: tokens per verify step with k drafts")
    expected_tokens_per_step_argmax_draft: list[float]
    per_position_acceptance: list[float] = Field(description="unconditional a_i at k_max (vLLM per-position)")
    conditional_acceptance: list[float] = Field(description="alpha_i = a_i / a_{i-1} at k_max")
    mean_position_acceptance: float = Field(description="mean of beta_t over all continuation positions "
                                            "(greedy agreement at T=0)")
    match_probability: float = Field(description="fraction of steps that proposed a draft (1 for model drafts)")
    heterogeneity: float = Field(description="std-dev over requests of logit(alpha_1)")
    speedup_batch1_by_k: list[float]
    recommended_k: int = Field(description="k maximising the batch-1 speedup; 0 = do not speculate")
    categories: list[CategoryEstimate] = Field(default_factory=list)


class MethodEstimate(SpecwiseModel):
    method: Literal["draft_model", "ngram"]
    verification: Literal["lossless", "argmax_draft"]
    draft: str | None = None
    cost_ratio: float = Field(description="c = draft forward / target forward time (per draft token)")
    cost_ratio_source: str
    temperatures: list[TemperatureEstimate]


class QuantizationEstimate(SpecwiseModel):
    """Acceptance with quantised weights against the same pair unquantised, on the same contexts."""

    method: str
    temperature: float
    quantized: str = Field(description="what was quantised, e.g. 'target int4', 'draft int8'")
    acceptance_rate_reference: float | None
    acceptance_rate_quantized: float | None
    drop: float | None = Field(description="reference - quantized (absolute)")
    within_five_points: bool | None = Field(
        description="|drop| <= 0.05: the framework's rule that quantised weights keep acceptance within 5 "
        "points of bf16 (docs/reference/theory-and-calibration.md §5); otherwise measure on the quantised deployment")


class ValidationEntry(SpecwiseModel):
    """Estimated vs measured acceptance at one temperature (a real speculative decoding loop)."""

    temperature: float
    method: str
    verification: str
    k: int
    acceptance_estimated: float | None
    acceptance_measured: float | None
    abs_error: float | None
    tokens_per_step_estimated: float | None = None
    tokens_per_step_measured: float | None = None
    per_position_estimated: list[float] = Field(default_factory=list, description="steady state (steps at least "
                                                "k tokens before the end)")
    per_position_measured: list[float] = Field(default_factory=list)
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    steps: int = 0
    drafts: int = Field(0, description="verify steps that carried a draft (the independent sampling units)")
    measured_stderr: float | None = Field(None, description="standard error of acceptance_measured (delta "
                                          "method, clustered by request); an error well inside 2 standard "
                                          "errors is noise")
    estimated_stderr: float | None = Field(None, description="standard error of acceptance_estimated over its "
                                           "sampled texts (delta method, clustered by request)")
    difference: float | None = Field(None, description="acceptance_estimated - acceptance_measured")
    difference_stderr: float | None = Field(None, description="standard error of difference, paired by request "
                                            "(the two sides are independent samples on the same prompts); "
                                            "delta method, so it needs many requests that draft: with a "
                                            "handful it understates the spread")
    difference_ci95: list[float] | None = Field(None, description="[low, high]: difference +- 1.96 "
                                                "difference_stderr")
    num_requests: int = 0
    statistically_compatible: bool | None = Field(None, description="|difference| <= 1.96 difference_stderr: "
                                                  "no evidence that the estimate is biased")
    tolerance: float = 0.05
    within_tolerance: bool | None = Field(None, description="abs_error <= tolerance")
    ci_within_tolerance: bool | None = Field(None, description="the whole difference_ci95 lies in +-tolerance: "
                                             "agreement within the tolerance shown at 95%, not just observed")


class DistributionCheckResult(SpecwiseModel):
    verification: str
    temperature: float
    samples: int
    categories: int = Field(description="cells of (first token, second token) compared, rare ones pooled")
    chi_square: float
    dof: int
    p_value: float
    false_alarm_rate: float
    passed: bool


class ContextInfo(SpecwiseModel):
    num_requests: int
    num_tokens: int = Field(description="continuation tokens the estimate is computed over")
    generated: int = Field(description="requests whose continuation the target generated")
    from_responses: int = Field(description="requests whose supplied response was teacher-forced")
    context_temperatures: list[float] = Field(description="temperatures the target generated continuations at; "
                                              "each evaluated temperature uses the nearest")


class Recommendation(SpecwiseModel):
    temperature: float
    method: str
    k: int
    speedup_batch1: float
    note: str = ""


class EstimateResult(SpecwiseModel):
    schema_version: Literal[1] = 1
    source: Source = Source.estimated
    target: str
    draft: str | None = None
    device: str
    dtype: str
    context: ContextInfo
    k_max: int
    top_p: float = Field(1.0, description="request top_p applied at every temperature > 0 (1 = off), target "
                         "side of verification as in vLLM")
    top_k: int = Field(0, description="request top_k applied at every temperature > 0 (0 = off)")
    acceptance_rate_definition: str
    method: str = Field(description="the method whose numbers are in `temperatures`")
    verification: str
    temperatures: list[TemperatureEstimate]
    methods: list[MethodEstimate]
    recommendations: list[Recommendation]
    quantization: list[QuantizationEstimate] = Field(default_factory=list)
    validation: list[ValidationEntry] = Field(default_factory=list)
    distribution_checks: list[DistributionCheckResult] = Field(default_factory=list)
    output_dir: str | None = None
    profile_path: str | None = None
    elapsed_s: float | None = None
    tokens_per_s: float | None = None
    notes: list[str] = Field(default_factory=list)
