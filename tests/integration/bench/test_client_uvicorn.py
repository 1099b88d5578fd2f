"""The streaming client against the HTTP stack vLLM serves with (FastAPI StreamingResponse on uvicorn).

uvicorn's chunked framing, its keep-alive and its closing of idle connections after 5 s must give
complete, exactly counted records on both stamp paths. Needs the vLLM environment's interpreter for
fastapi/uvicorn (``SPECWISE_VLLM_PYTHON``), hence the ``vllm`` marker.
"""

import asyncio
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from tests.integration.support.paths import vllm_python

from .test_client_http import _req

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

SERVER = Path(__file__).resolve().parents[1] / "support" / "uvicorn_sse.py"


@pytest.fixture(scope="module")
def uvicorn_url():
    python = vllm_python()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(python), str(SERVER), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("the uvicorn test server did not start")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("kernel", [True, False])
async def test_uvicorn_streams_are_complete_and_survive_its_idle_close(uvicorn_url, kernel):
    cfg = ClientConfig(base_url=uvicorn_url + "/v1", model="m", timeout_s=30.0)
    async with StreamingClient(cfg, kernel_stamps=kernel) as client:
        rounds = []
        for pause in (0.0, 0.5, 5.5):  # reuse at once, reuse after a pause, and after uvicorn closed them idle
            await asyncio.sleep(pause)
            rounds.append(await asyncio.gather(*(client.send(_req(i, max_tokens=12), role="baseline")
                                                 for i in range(6))))
    for outs in rounds:
        for out in outs:
            r = out.record
            assert r.ok, r.error
            assert r.output_tokens == 12 and r.chunk_tokens == [1] * 12 and r.token_count_method == "usage"
            assert out.text == "".join(f"t{i} " for i in range(12))
            assert 0 < r.ttft_s < r.e2e_s
