"""`specwise estimate` input errors: one line, exit code 2, before any model is loaded."""

import builtins

import pytest

from specwise.cli.main import main
from specwise.errors import MissingExtraError


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_missing_prompt_file(capsys, tmp_path):
    code, err = _run(["estimate", "--target", "smollm2-135m", "--prompts", str(tmp_path / "none.jsonl")], capsys)
    assert code == 2 and "prompt file not found" in err


def test_bad_temperatures_and_method(capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    code, err = _run(["estimate", "--target", "t", "--prompts", str(prompts), "--temperatures", "a,b"], capsys)
    assert code == 2 and "comma-separated" in err
    code, err = _run(["estimate", "--target", "t", "--prompts", str(prompts), "--method", "eagle"], capsys)
    assert code == 2 and "unknown --method" in err


@pytest.mark.parametrize("flag,value,message", [("--top-p", "0", "--top-p must be in (0, 1]"),
                                                 ("--top-p", "1.5", "--top-p must be in (0, 1]"),
                                                 ("--top-k", "-2", "--top-k must be a positive")])
def test_bad_top_p_top_k(capsys, tmp_path, flag, value, message):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    code, err = _run(["estimate", "--target", "t", "--prompts", str(prompts), flag, value], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_extra_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name in ("torch", "transformers"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from specwise.estimate.models import require_torch

    with pytest.raises(MissingExtraError, match=r"pip install 'specwise\[estimate\]'"):
        require_torch()


@pytest.mark.parametrize("version,message", [("0.3.0", "has no speculative decoding"), ("9.0.0", "newer than"),
                                             ("abc", "cannot read vLLM version")])
def test_bad_vllm_version(capsys, tmp_path, version, message):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    code, err = _run(["estimate", "--target", "t", "--prompts", str(prompts), "--method", "ngram",
                      "--vllm-version", version], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_target_and_prompts_come_from_flags_or_a_config_file(capsys, tmp_path):
    code, err = _run(["estimate", "--prompts", str(tmp_path / "p.jsonl")], capsys)
    assert code == 2 and "give --target MODEL and --prompts FILE" in err
    cfg = tmp_path / "estimate.yaml"
    cfg.write_text(f"target: t\nprompts: {tmp_path / 'none.jsonl'}\ntemperatures: [0, 0.7]\n")
    code, err = _run(["estimate", "--config", str(cfg)], capsys)
    assert code == 2 and "prompt file not found" in err  # the file's prompts were used
    code, err = _run(["estimate", "--config", str(cfg), "--top-p", "0"], capsys)
    assert code == 2 and "--top-p must be in (0, 1]" in err  # a flag on top of the file, validated by the config


def test_the_resolved_config_is_written_before_models_load_and_reads_back(capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    out = tmp_path / "out"
    code, err = _run(["estimate", "--target", str(tmp_path / "no-such-model"), "--prompts", str(prompts),
                      "--temperatures", "0.7,0", "--k-max", "3", "--output-dir", str(out)], capsys)
    assert code == 2 and "Traceback" not in err  # the model does not exist; the inputs were valid
    import json

    written = json.loads((out / "config.json").read_text())
    assert written["temperatures"] == [0.0, 0.7] and written["k_max"] == 3 and written["method"] == "auto"
    code, err = _run(["estimate", "--config", str(out / "config.json"), "--output-dir", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    assert json.loads((out / "config.json").read_text()) == written  # the same run again
