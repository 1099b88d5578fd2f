"""Step time of a running vLLM server at fixed batch sizes (closed batches), for calibrating specwise's step model.

For each batch size B, B streaming /v1/completions requests start together (prompt of P words ``tN`` from the
random-weight models' WordLevel vocabulary, ``max_tokens`` M, ``ignore_eos``, T=0). With that tokenizer one
output token is one word, so each streamed chunk says exactly how many tokens that engine step emitted for
the sequence. Per stream: step time = (last chunk time - first chunk time) / (chunks - 1), tokens per step =
(tokens after the first chunk) / (chunks - 1); the median over streams is reported. A mean over a whole stream
is insensitive to chunks that arrive bunched in one socket read. ``/metrics`` spec-decode counters are read
before and after every batch (drafts, draft tokens, accepted tokens).

Runs on the device machine next to the servers (stdlib + httpx only):

    python3 gpu_step_probe.py --server base=8001 --server spec=8003 --batches 1,4,16,64 --out probe.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time

import httpx

METRIC_RE = re.compile(r"^(vllm:spec_decode_num_(?:drafts|draft_tokens|accepted_tokens)_total)(?:\{[^}]*\})?\s+(\S+)$",
                       re.M)


async def metrics(client: httpx.AsyncClient, root: str) -> dict[str, float]:
    text = (await client.get(f"{root}/metrics")).text
    out: dict[str, float] = {}
    for name, value in METRIC_RE.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def one(client: httpx.AsyncClient, root: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True,
            "stream": True}
    t0 = time.perf_counter()
    stamps: list[tuple[float, int]] = []
    async with client.stream("POST", f"{root}/v1/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                continue
            now = time.perf_counter()
            data = json.loads(line[6:])
            text = "".join(c.get("text", "") for c in data.get("choices", []))
            n = len(text.split())
            if n:
                stamps.append((now, n))
    if len(stamps) < 3:
        return {"ok": False, "chunks": len(stamps)}
    gaps = len(stamps) - 1
    return {"ok": True, "ttft_s": stamps[0][0] - t0, "chunks": len(stamps), "tokens": sum(n for _, n in stamps),
            "step_s": (stamps[-1][0] - stamps[0][0]) / gaps,
            "tokens_per_step": sum(n for _, n in stamps[1:]) / gaps,
            "e2e_s": stamps[-1][0] - t0}


async def probe(root: str, batches: list[int], prompt_words: int, max_tokens: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=max(batches) + 8, max_keepalive_connections=max(batches) + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        model = (await client.get(f"{root}/v1/models")).json()["data"][0]["id"]
        warm = " ".join(f"t{rng.randrange(3, 128000)}" for _ in range(prompt_words))
        await one(client, root, model, warm, 16)
        rows = []
        for b in batches:
            prompts = [" ".join(f"t{rng.randrange(3, 128000)}" for _ in range(prompt_words)) for _ in range(b)]
            m0 = await metrics(client, root)
            wall0 = time.time()
            t0 = time.perf_counter()
            res = await asyncio.gather(*(one(client, root, model, p, max_tokens) for p in prompts))
            wall = time.perf_counter() - t0
            m1 = await metrics(client, root)
            ok = [r for r in res if r.get("ok")]
            delta = {k.split("num_")[1].removesuffix("_total"): m1.get(k, 0.0) - m0.get(k, 0.0) for k in m1}
            row = {"batch": b, "ok": len(ok), "unix_start": wall0, "wall_s": wall, "metrics_delta": delta}
            if ok:
                row.update(step_s_p50=statistics.median(r["step_s"] for r in ok),
                           step_s_min=min(r["step_s"] for r in ok), step_s_max=max(r["step_s"] for r in ok),
                           tokens_per_step_p50=statistics.median(r["tokens_per_step"] for r in ok),
                           ttft_s_p50=statistics.median(r["ttft_s"] for r in ok),
                           tpot_s_p50=statistics.median((r["e2e_s"] - r["ttft_s"]) / (r["tokens"] - 1) for r in ok))
            rows.append(row)
            print(json.dumps({"root": root, **{k: v for k, v in row.items() if k != "metrics_delta"}}), flush=True)
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", action="append", required=True, help="NAME=PORT (127.0.0.1)")
    ap.add_argument("--batches", default="1,2,4,8,16,32,64,128,256")
    ap.add_argument("--prompt-words", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    batches = [int(x) for x in args.batches.split(",")]
    out = {"prompt_words": args.prompt_words, "max_tokens": args.max_tokens, "servers": {}}
    for spec in args.server:
        name, _, port = spec.partition("=")
        try:
            out["servers"][name] = asyncio.run(probe(f"http://127.0.0.1:{port}", batches, args.prompt_words,
                                                     args.max_tokens, args.seed))
        except Exception as exc:  # a server that died must not lose the others' rows
            out["servers"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
