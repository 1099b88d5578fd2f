"""config.json under hostile input: every case is a spec or a one-line UserError naming the file, never a
traceback or a hang (issue 13: wrong types, lists, nulls, huge numbers, num_hidden_layers 1e30)."""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path

import pytest

from specwise.catalog.hf_config import spec_from_config, spec_from_path
from specwise.cli.main import main
from specwise.errors import UserError
from tests.hostile import assert_one_line, json_value

TINY = Path(__file__).parents[1] / "plan" / "fixtures" / "tiny-llama"
LLAMA = json.loads((TINY / "config.json").read_text())
MOE = {**LLAMA, "model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
       "n_shared_experts": 1, "first_k_dense_replace": 1}
MLA = {**LLAMA, "model_type": "deepseek_v3", "kv_lora_rank": 32, "q_lora_rank": 48, "qk_rope_head_dim": 16,
       "qk_nope_head_dim": 16, "v_head_dim": 16, "num_nextn_predict_layers": 1, "n_routed_experts": 4,
       "num_experts_per_tok": 2, "moe_intermediate_size": 32}
GEMMA = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
         "text_config": {**LLAMA, "model_type": "gemma3_text", "sliding_window": 128, "sliding_window_pattern": 6,
                         "layer_types": ["sliding_attention", "full_attention"]},
         "quantization_config": {"quant_method": "fp8"}}
EAGLE3 = {"architectures": ["Eagle3Speculator"], "speculators_model_type": "eagle3", "draft_vocab_size": 256,
          "speculators_config": {"verifier": {"name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}},
          "transformer_layer_config": {**LLAMA, "num_hidden_layers": 1}}
BASES = [LLAMA, MOE, MLA, GEMMA, EAGLE3]

KEYS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "num_key_value_heads", "head_dim",
        "intermediate_size", "moe_intermediate_size", "num_local_experts", "num_experts", "n_routed_experts",
        "num_experts_per_tok", "n_shared_experts", "first_k_dense_replace", "kv_lora_rank", "q_lora_rank",
        "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "sliding_window", "use_sliding_window",
        "sliding_window_pattern", "layer_types", "max_position_embeddings", "num_nextn_predict_layers",
        "draft_vocab_size", "model_type", "architectures", "tie_word_embeddings", "attention_bias",
        "quantization_config", "torch_dtype", "text_config", "transformer_layer_config", "speculators_config",
        "speculators_model_type"]


def _check(cfg: dict, source: str = "config: fuzz") -> bool:
    """The property: a usable spec (its counts computable; True) or a one-line UserError naming the source."""
    try:
        spec, _ = spec_from_config(cfg, "fuzz-model", source)
    except UserError as exc:
        assert_one_line(str(exc))
        assert source in str(exc)
        return False
    spec.param_counts()
    spec.kv_bytes_per_token(2.0, context_len=1024)
    spec.weight_bytes()
    return True


@pytest.mark.parametrize("field,value", [
    ("hidden_size", "abc"), ("hidden_size", [1, 2]), ("hidden_size", None), ("hidden_size", float("inf")),
    ("hidden_size", 1e30), ("hidden_size", True), ("num_hidden_layers", 1e30), ("num_hidden_layers", 10**11),
    ("vocab_size", -5), ("head_dim", 1.5), ("sliding_window", "x"), ("architectures", 5),
    ("transformer_layer_config", 5), ("speculators_config", 5), ("layer_types", [1, 2]),
])
def test_issue_cases_are_one_line_errors(field, value):
    cfg = {**LLAMA, field: value}
    start = time.monotonic()
    with pytest.raises(UserError) as info:
        spec_from_config(cfg, "m", "config: x.json")
    assert time.monotonic() - start < 1.0  # num_hidden_layers 1e30 used to loop forever
    assert_one_line(str(info.value))
    assert field in str(info.value) and "x.json" in str(info.value)


def test_inconsistent_and_incomplete_configs_say_what_is_wrong():
    with pytest.raises(UserError, match="lacks qk_rope_head_dim, qk_nope_head_dim, v_head_dim"):
        spec_from_config({**LLAMA, "kv_lora_rank": 8}, "m", "config: x.json")
    with pytest.raises(UserError, match="inconsistent.*num_experts_per_tok"):
        spec_from_config({**LLAMA, "num_local_experts": 4}, "m", "config: x.json")
    with pytest.raises(UserError, match="inconsistent.*multiple of"):
        spec_from_config({**LLAMA, "num_attention_heads": 3, "num_key_value_heads": 2}, "m", "config: x.json")
    with pytest.raises(UserError, match="lacks text_config.num_hidden_layers"):
        spec_from_config({"text_config": {"hidden_size": 8}}, "m", "config: x.json")


def test_json_level_cases_through_the_file_reader(tmp_path):
    path = tmp_path / "config.json"
    texts = ['{"hidden_size": 1e400}', "[1, 2]", "{", "[" * 5000 + "]" * 5000, '{"a": [' * 40 + "]" * 40 + "}",
             '{"a": ' * 3000 + "1" + "}" * 3000, '{"hidden_size": ' + "9" * 5000 + "}"]
    for text in texts:
        path.write_text(text)
        with pytest.raises(UserError) as info:
            spec_from_path(path)
        assert_one_line(str(info.value))
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(UserError):
        spec_from_path(path)


def test_plan_cli_exits_2_on_a_bad_config(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "num_hidden_layers": 1e30}))
    with pytest.raises(SystemExit) as info:
        main(["plan", "--target", str(path), "--gpu", "H100"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert_one_line(err)
    assert "num_hidden_layers" in err


def _mutate(rng: random.Random, cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for _ in range(rng.randint(1, 3)):
        target = cfg
        for nest in ("text_config", "transformer_layer_config"):
            if isinstance(cfg.get(nest), dict) and rng.random() < 0.7:
                target = cfg[nest]
        key = rng.choice(KEYS + list(target))
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = json_value(rng)
    return cfg


def test_generated_configs_never_raise_anything_but_user_error():
    rng = random.Random(20261203)
    start = time.monotonic()
    parsed = 0
    for i in range(1500):
        cfg = _mutate(rng, rng.choice(BASES))
        try:
            parsed += _check(cfg)
        except Exception as exc:  # report the case that broke, reproducible from the seed
            raise AssertionError(f"case {i}: {type(exc).__name__}: {exc}\n{str(cfg)[:2000]}") from exc
    assert 100 < parsed < 1400, parsed  # both outcomes are exercised
    assert time.monotonic() - start < 30


def test_target_names_that_are_no_path_and_huge_files(tmp_path):
    from specwise.catalog.resolve import load_model_spec

    for name in ("a" * 5000, "a\x00b"):  # OSError (name too long) and ValueError (NUL) from Path.exists before
        with pytest.raises(UserError, match="unknown model"):
            load_model_spec(name)
    big = tmp_path / "config.json"
    big.write_text('{"x": "' + "a" * (17 << 20) + '"}')
    with pytest.raises(UserError, match="larger than 16 MiB"):
        load_model_spec(str(big))


EXTREMES = {"hidden_size": [1, 3, 1 << 18], "num_hidden_layers": [1, 4096], "num_attention_heads": [1, 1 << 14],
            "num_key_value_heads": [1, 1 << 14], "vocab_size": [1, 1 << 24], "intermediate_size": [1, 1 << 22],
            "max_position_embeddings": [1, 2, 1 << 30], "head_dim": [1, 1 << 14], "sliding_window": [1, 1 << 30],
            "num_local_experts": [1, 1 << 16], "num_experts_per_tok": [1, 1 << 16], "kv_lora_rank": [1, 1 << 18],
            "qk_rope_head_dim": [1, 1 << 14], "qk_nope_head_dim": [0, 1 << 14], "v_head_dim": [1, 1 << 14]}


def test_configs_at_the_bounds_plan_or_exit_2(tmp_path, capsys):
    """Sizes at the accepted limits go through the whole plan (memory, pairing, launch config) without an
    overflow: a plan, or a one-line exit 2 (e.g. it does not fit)."""
    rng = random.Random(3)
    for i in range(30):
        cfg = dict(LLAMA)
        for key in rng.sample(sorted(EXTREMES), rng.randint(1, 5)):
            cfg[key] = rng.choice(EXTREMES[key])
        path = tmp_path / f"c{i}.json"
        path.write_text(json.dumps(cfg))
        try:
            main(["plan", "--target", str(path), "--gpu", "H100", "--json", "--draft", str(TINY)])
        except SystemExit as exc:
            assert exc.code == 2, cfg
            assert_one_line(capsys.readouterr().err)
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}\n{cfg}") from exc
        capsys.readouterr()
