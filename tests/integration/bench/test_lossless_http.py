"""Losslessness sampling over real HTTP (two aiohttp servers on 127.0.0.1)."""

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from specwise.bench.lossless import LosslessPlan, collect_lossless_samples, compare_lossless
from specwise.bench.workloads import build_workload

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration


async def test_collect_over_http_identical_servers_pass():
    wl = build_workload("chat")
    plan = LosslessPlan(greedy_prompts=2, sampled_prompts=1, samples_per_prompt=8, permutations=200)
    with SSEServer(ServerBehaviour(ttft_s=0, itl_s=0)) as a, SSEServer(ServerBehaviour(ttft_s=0, itl_s=0,
                                                                                        tokens_per_chunk=[3])) as b:
        out = []
        for srv in (a, b):
            cfg = ClientConfig(base_url=srv.url, model="test-model", token_counting="token_ids")
            async with StreamingClient(cfg) as c:
                out.append(await collect_lossless_samples(c, wl, plan, role="baseline"))
    check = compare_lossless(out[0], out[1], plan)
    # deterministic servers: same text, and same (degenerate) token distributions
    assert check.passed is True and check.greedy_prompts == 2
