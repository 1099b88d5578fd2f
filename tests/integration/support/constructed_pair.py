"""A target/draft model pair whose speculative acceptance is known by construction.

Recipe: vllm-cpu-recipe.md, "A target/draft pair with acceptance known by construction". Each model is a one-layer
Llama whose hidden size equals its vocabulary size: the embedding is the identity, every attention and MLP weight
is zero (so the residual stream carries the current token's one-hot vector unchanged), the norms are 1, and
`lm_head` writes a fixed logit row for each input token. The model is therefore a bigram table whose logits we
choose exactly:

* target, input x:  logit TOP on pi(x), TOP - GAP on rho(x), OTHER on every other token;
* draft, input x:   the target's row when x is in the agreement set A, otherwise TOP on sigma(x) != pi(x),
  TOP - GAP on pi(x), OTHER elsewhere.

At temperature 0 the target continues along the orbit of pi (one long cycle over the ordinary tokens) and a draft
position i is accepted iff x, pi(x), ..., pi^(i-1)(x) all lie in A, so the acceptance of any request follows from
exact simulation (`expected_acceptance`). At temperature T the target's next-token distribution is the softmax of
its row divided by T, in closed form (`target_category_probabilities`).

A word-level tokenizer over `w0 .. w{N-1}` makes text and token ids map one to one. Everything here uses only
numpy and the standard library (safetensors and tokenizer.json are written directly), so building is instant and
deterministic.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# 8 heads of 64: the CPU attention backend needs head_dim >= 32 (vllm-cpu-recipe.md, "Models").
HIDDEN = 512
NUM_HEADS = 8
NUM_SPECIAL = 2  # "<unk>", "</s>"
NUM_WORDS = HIDDEN - NUM_SPECIAL
UNK_ID = NUM_WORDS
EOS_ID = NUM_WORDS + 1

# Logits (after the final RMSNorm, which scales the one-hot residual by sqrt(HIDDEN)). GAP = 1 keeps a real second
# candidate at T > 0 (p(top) = 1/(1+e^-1/T)); OTHER = -8 keeps every other token (and EOS) out of reach:
# at T = 1 all 509 of them together get about 1e-5 of the mass, which the closed form still includes.
TOP_LOGIT = 8.0
GAP = 1.0
OTHER_LOGIT = -8.0

# The final RMSNorm divides by sqrt(mean square + eps) = sqrt(1/HIDDEN + eps), not exactly sqrt(1/HIDDEN): every
# logit comes out scaled by 1/sqrt(1 + HIDDEN * eps) (0.99974 here; the real model gives 7.998 for TOP_LOGIT 8).
RMS_NORM_EPS = 1e-6
LOGIT_SCALE = 1.0 / math.sqrt(1.0 + HIDDEN * RMS_NORM_EPS)

BUILD_VERSION = 1  # bump when the construction changes so cached directories are rebuilt


@dataclass(frozen=True)
class PairSpec:
    """The maps that define the pair; derived deterministically from `seed` and `agreement`."""

    seed: int = 20261124
    agreement: float = 0.8  # share of ordinary tokens where the draft's greedy map equals the target's
    cycle: tuple[int, ...] = field(default=(), compare=False)
    in_agreement: frozenset[int] = field(default=frozenset(), compare=False)

    @staticmethod
    def make(seed: int = 20261124, agreement: float = 0.8) -> "PairSpec":
        rng = np.random.default_rng(seed)
        cycle = tuple(int(t) for t in rng.permutation(NUM_WORDS))
        chosen = rng.choice(NUM_WORDS, size=round(agreement * NUM_WORDS), replace=False)
        return PairSpec(seed, agreement, cycle, frozenset(int(t) for t in chosen))

    @property
    def position_in_cycle(self) -> dict[int, int]:
        return {tok: i for i, tok in enumerate(self.cycle)}

    def pi(self, token: int) -> int:
        """Target's greedy successor: the next token on one cycle through all ordinary tokens."""
        i = self.position_in_cycle[token]
        return self.cycle[(i + 1) % NUM_WORDS]

    def rho(self, token: int) -> int:
        """Target's second-most-likely successor (matters only at T > 0)."""
        i = self.position_in_cycle[token]
        return self.cycle[(i + 2) % NUM_WORDS]

    def sigma(self, token: int) -> int:
        """Draft's greedy successor: equal to pi on the agreement set, a different token elsewhere."""
        if token in self.in_agreement:
            return self.pi(token)
        i = self.position_in_cycle[token]
        return self.cycle[(i + 3) % NUM_WORDS]


def word(token_id: int) -> str:
    return f"w{token_id}"


def token_ids_from_text(text: str) -> list[int]:
    """Inverse of the word-level tokenizer for generated text ("w12 w7 ..." -> [12, 7, ...])."""
    ids = []
    for piece in text.split():
        if not (piece.startswith("w") and piece[1:].isdigit()):
            raise ValueError(f"not a word of the constructed vocabulary: {piece!r}")
        ids.append(int(piece[1:]))
    return ids


# --------------------------------------------------------------------------------------------------- building


def _logit_table(spec: PairSpec, role: str) -> np.ndarray:
    """rows: input token, columns: logit of each next token."""
    table = np.full((HIDDEN, HIDDEN), OTHER_LOGIT, dtype=np.float64)
    for x in range(NUM_WORDS):
        if role == "target" or x in spec.in_agreement:
            top, second = spec.pi(x), spec.rho(x)
        else:
            top, second = spec.sigma(x), spec.pi(x)
        table[x, top] = TOP_LOGIT
        table[x, second] = TOP_LOGIT - GAP
    # Special tokens never appear as inputs in the tests; give them a harmless, well-defined successor.
    for special in (UNK_ID, EOS_ID):
        table[special, spec.cycle[0]] = TOP_LOGIT
    return table


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: u64 header length, JSON header (dtype, shape, byte offsets), raw little-endian data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def _weights(spec: PairSpec, role: str, intermediate: int) -> dict[str, np.ndarray]:
    h = HIDDEN
    zeros = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    # Final RMSNorm turns the one-hot e_x into sqrt(h) * e_x (mean square 1/h), so logits = sqrt(h) * lm_head[:, x].
    lm_head = (_logit_table(spec, role).T / math.sqrt(h)).astype(np.float32)
    layer = "model.layers.0."
    return {
        "model.embed_tokens.weight": np.eye(h, dtype=np.float32),
        layer + "self_attn.q_proj.weight": zeros(h, h),
        layer + "self_attn.k_proj.weight": zeros(h, h),
        layer + "self_attn.v_proj.weight": zeros(h, h),
        layer + "self_attn.o_proj.weight": zeros(h, h),
        layer + "mlp.gate_proj.weight": zeros(intermediate, h),
        layer + "mlp.up_proj.weight": zeros(intermediate, h),
        layer + "mlp.down_proj.weight": zeros(h, intermediate),
        layer + "input_layernorm.weight": ones(h),
        layer + "post_attention_layernorm.weight": ones(h),
        "model.norm.weight": ones(h),
        "lm_head.weight": lm_head,
    }


# Concatenates the message contents separated by spaces: the last word of the last message is the state the
# continuation starts from, exactly as with /v1/completions.
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }} {% endfor %}"


def _tokenizer_json() -> dict:
    vocab = {word(i): i for i in range(NUM_WORDS)}
    vocab["<unk>"] = UNK_ID
    vocab["</s>"] = EOS_ID
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": tid, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for tok, tid in (("<unk>", UNK_ID), ("</s>", EOS_ID))
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        # WordPiece's decoder puts a space between words (no "##" continuations exist in this vocabulary).
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": False},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }


def _config(intermediate: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": intermediate,
        "num_hidden_layers": 1,
        "num_attention_heads": NUM_HEADS,
        "num_key_value_heads": NUM_HEADS,
        "head_dim": HIDDEN // NUM_HEADS,
        "vocab_size": HIDDEN,
        "max_position_embeddings": 2048,
        "rms_norm_eps": RMS_NORM_EPS,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": EOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": "float32",
    }


def build_model(directory: Path, spec: PairSpec, role: str) -> Path:
    """Write one model of the pair (role "target" or "draft") as a Hugging Face directory vLLM loads."""
    if role not in ("target", "draft"):
        raise ValueError(role)
    intermediate = 128
    directory.mkdir(parents=True, exist_ok=True)
    _write_safetensors(directory / "model.safetensors", _weights(spec, role, intermediate))
    (directory / "config.json").write_text(json.dumps(_config(intermediate), indent=1))
    (directory / "tokenizer.json").write_text(json.dumps(_tokenizer_json()))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=1))
    (directory / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>", "unk_token": "<unk>"}))
    return directory


def ensure_pair(cache: Path, spec: PairSpec | None = None) -> tuple[Path, Path, PairSpec]:
    """Build (once) and return (target_dir, draft_dir, spec); a stamp file makes reuse safe after an interrupted build."""
    spec = spec or PairSpec.make()
    root = cache / f"constructed-pair-v{BUILD_VERSION}-seed{spec.seed}-a{round(spec.agreement * 100)}"
    stamp = root / "complete"
    if not stamp.exists():
        for role in ("target", "draft"):
            build_model(root / role, spec, role)
        stamp.write_text("ok\n")
    return root / "target", root / "draft", spec


# ------------------------------------------------------------------------------------------ exact expectations


@dataclass
class AcceptanceCounts:
    """What vLLM V1's spec-decode counters should show (vllm-speculative-decoding.md §2.3)."""

    num_drafts: int = 0
    num_draft_tokens: int = 0
    num_accepted_tokens: int = 0
    accepted_per_position: list[int] = field(default_factory=list)
    output_tokens: int = 0
    # per request: tokens emitted by each speculative step (1 + accepted, the last one cut at max_tokens), i.e. the
    # tokens of each stream chunk after the first; and accepted drafts per step as vLLM's per-request metrics show
    tokens_per_step: list[list[int]] = field(default_factory=list)
    accepted_per_step: list[list[int]] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        return self.num_accepted_tokens / self.num_draft_tokens

    @property
    def mean_acceptance_length(self) -> float:
        return 1 + self.num_accepted_tokens / self.num_drafts

    @property
    def per_position_rate(self) -> list[float]:
        return [a / self.num_drafts for a in self.accepted_per_position]


def greedy_continuation(spec: PairSpec, last_prompt_token: int, max_tokens: int) -> list[int]:
    out, x = [], last_prompt_token
    for _ in range(max_tokens):
        x = spec.pi(x)
        out.append(x)
    return out


def expected_acceptance(spec: PairSpec, prompts: list[list[int]], k: int, max_tokens: int) -> AcceptanceCounts:
    """Exact counters for greedy (T = 0) requests with a draft model proposing k tokens per step.

    Step structure of vLLM V1 (0.32, `Scheduler.schedule` / `update_from_output`, checked against the real
    server): the prefill step samples the first output token and the drafter proposes k tokens after it; every later
    step verifies k proposals (one "draft" per request per step), emits accepted + 1 tokens and drafts again. The
    scheduler does not trim drafts to what max_tokens still allows, and the counters take the accepted count before
    the output is cut at max_tokens, so the last step of a request counts its full accepted prefix.
    """
    counts = AcceptanceCounts(accepted_per_position=[0] * k)
    for prompt in prompts:
        x = spec.pi(prompt[-1])  # prefill step: first output token
        generated = 1
        steps: list[int] = []
        accepted_steps: list[int] = []
        while generated < max_tokens:
            accepted, state = 0, x
            while accepted < k and state in spec.in_agreement:
                accepted += 1
                state = spec.pi(state)
            counts.num_drafts += 1
            counts.num_draft_tokens += k
            counts.num_accepted_tokens += accepted
            for i in range(accepted):
                counts.accepted_per_position[i] += 1
            emitted = min(accepted + 1, max_tokens - generated)
            steps.append(emitted)
            accepted_steps.append(accepted)
            for _ in range(emitted):
                x = spec.pi(x)
            generated += emitted
        counts.output_tokens += generated
        counts.tokens_per_step.append(steps)
        counts.accepted_per_step.append(accepted_steps)
    return counts


# ------------------------------------------------------------------------------------------- sampling at T > 0

CATEGORIES = ("top", "second", "other")


def target_category_probabilities(temperature: float) -> dict[str, float]:
    """Closed-form probability that the target's next token is pi(x), rho(x) or anything else, at temperature T."""
    n_other = HIDDEN - 2
    scale = LOGIT_SCALE / temperature
    weights = {
        "top": math.exp(TOP_LOGIT * scale),
        "second": math.exp((TOP_LOGIT - GAP) * scale),
        "other": n_other * math.exp(OTHER_LOGIT * scale),
    }
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def classify_transitions(spec: PairSpec, last_prompt_token: int, continuation: list[int]) -> dict[str, int]:
    """Count each step x -> y of a sampled continuation by which of the target's candidates y is."""
    counts = dict.fromkeys(CATEGORIES, 0)
    x = last_prompt_token
    for y in continuation:
        if x >= NUM_WORDS:  # a special token as the state: no candidates defined, count as "other"
            counts["other"] += 1
        elif y == spec.pi(x):
            counts["top"] += 1
        elif y == spec.rho(x):
            counts["second"] += 1
        else:
            counts["other"] += 1
        x = y
    return counts
