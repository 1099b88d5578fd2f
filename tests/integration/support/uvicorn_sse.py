"""An OpenAI-style streaming endpoint served the way vLLM serves it: FastAPI ``StreamingResponse`` on uvicorn.

Run with the vLLM environment's interpreter (it has fastapi and uvicorn): ``python uvicorn_sse.py PORT``.
Each request streams ``max_tokens`` chunks 5 ms apart with continuous usage, a usage-only chunk and
``[DONE]``; uvicorn closes idle keep-alive connections after its default 5 s, as under vLLM.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {}


@app.post("/v1/chat/completions")
async def complete(request: Request) -> StreamingResponse:
    body = await request.json()
    n = int(body["max_tokens"])

    async def events():
        for i in range(n):
            await asyncio.sleep(0.005)
            chunk = {"id": "x", "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                                  "finish_reason": "length" if i == n - 1 else None}],
                     "usage": {"prompt_tokens": 4, "completion_tokens": i + 1, "total_tokens": i + 5}}
            yield f"data: {json.dumps(chunk)}\n\n"
        final = {"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": n + 4}}
        yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
