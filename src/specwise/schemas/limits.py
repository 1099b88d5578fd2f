"""Ranges every numeric input must fall in, as constrained types, and one way to check a flag against them.

A number typed on the command line or read from a file enters through one of these types, so ``inf``, ``nan``,
negatives and absurd sizes are refused where they enter (one line, exit 2) instead of overflowing ``int()``,
hanging a loop or allocating until memory runs out further on. The bounds are generous: each is far beyond any
real deployment, and says why it exists.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from specwise.errors import UserError

# Requests per second of one load point: 10^6 is beyond any single deployment (vLLM serves ~10^2-10^4);
# 10^-3 is one request per 17 minutes, below which a simulated or benchmarked point has no load to measure
# (at 1e-300 the arrival times overflow to inf).
MIN_QPS = 1e-3
MAX_QPS = 1e6
# Requests per simulated load point, bounded by what memory allows: the simulator keeps ~20 KB per request
# (1.9 GB peak RSS for 10^5 requests at one point, measured on the 2-core CI machine), and one point may use
# half of this machine's physical memory (at least 10^4 requests, at most 10^7).
SIM_BYTES_PER_REQUEST = 20_000


def _requests_memory_allows() -> int:
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume 8 GiB
        total = 8 << 30
    return max(10_000, min(10_000_000, int(total * 0.5 / SIM_BYTES_PER_REQUEST)))


MAX_SIM_REQUESTS = _requests_memory_allows()
# Seconds of arrivals per load point: 10^6 s is 11.6 days.
MAX_DURATION_S = 1e6
# Requests kept in flight (closed loop): 2^14, far above vLLM's max_num_seqs defaults (256-1024); a closed-loop
# point simulates 4 x concurrency requests (65,536), which stays under MAX_SIM_REQUESTS.
MAX_CONCURRENCY = 1 << 14
# Draft tokens per step: vLLM's num_speculative_tokens is validated to the same bound by plan.
MAX_K = 64
# Seeds: numpy and torch both take any integer in [0, 2^63).
MAX_SEED = (1 << 63) - 1
# Token counts (lengths, context, batched tokens): 2^30, the largest max_position_embeddings accepted.
MAX_TOKENS = 1 << 30
# GPU sizes: 10^5 GiB of memory, 10^3 TB/s, 10^6 TFLOP/s are ~1000x today's largest accelerators.
MAX_GPU_MEMORY_GIB = 1e5
MAX_GPU_BANDWIDTH_TBS = 1e3
MAX_GPU_TFLOPS = 1e6
# GPUs per deployment and tensor-parallel size.
MAX_GPUS = 1 << 16

# Gamma shape of arrivals: 10^-3..10^3; below, a handful of gaps span the whole run; above, the gaps are
# constant to 3 digits (use constant arrivals).
Burstiness = Annotated[float, Field(ge=1e-3, le=1e3, allow_inf_nan=False)]
# Std-dev of the per-request log-odds shift of acceptance: 10 already makes every request all-or-nothing.
Heterogeneity = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]
Qps = Annotated[float, Field(ge=MIN_QPS, le=MAX_QPS, allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)]
SimRequests = Annotated[int, Field(ge=1, le=MAX_SIM_REQUESTS)]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
DraftK = Annotated[int, Field(ge=1, le=MAX_K)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
# Sampling temperature: [0, 2] is the OpenAI API range (vLLM itself only refuses T < 0); above 2 a model samples
# close to uniformly, which no deployment serves, so a larger value is a typo.
Temperature = Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def check_flag(flag: str, value: Any, kind: Any) -> Any:
    """``value`` validated as ``kind`` (one of the types above, or a list of them); else a one-line
    :class:`UserError` naming ``flag`` and the allowed range."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        shown = repr(err.get("input", value))
        shown = shown if len(shown) <= 30 else shown[:27] + "..."
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if "exceeded maximum size" in msg:  # pydantic's wording for a float like 1e30 given as a count
            msg = "far too large"
        raise UserError(f"{flag} {shown}: {msg[:1].lower() + msg[1:]}") from None
