import pytest

from specwise.cli.main import main
from tests.cli_support import exit_code


@pytest.mark.parametrize("args,msg", [
    (["--qps", "1"], "exactly one of --baseline"),
    (["--baseline", "http://a", "--baseline-cmd", "x", "--speculative", "http://b"], "exactly one of --baseline"),
    (["--baseline", "http://a", "--speculative", "http://b", "--qps", "fast"], "--qps"),
    (["--baseline", "http://a", "--speculative", "http://b", "--api", "grpc"], "--api"),
    (["--baseline", "http://a", "--speculative", "http://b", "--num-requests", "5", "--duration", "3"], "not both"),
    (["--baseline", "http://a", "--speculative", "http://b", "--arrival", "closed_loop"], "--concurrency"),
    (["--baseline", "http://a", "--speculative", "http://b", "--client-workers", "0"], "--client-workers"),
    (["--baseline", "http://a", "--speculative", "http://b", "--client-workers", "many"], "--client-workers"),
    (["--baseline", "http://a", "--speculative", "http://b", "--gpu", "H100"], "give --baseline-cmd"),
    (["--baseline-cmd", "vllm serve m", "--speculative", "http://b", "--gpu", "H999"], "unknown GPU 'H999'"),
    (["--baseline-cmd", "vllm serve m", "--speculative", "http://b", "--plan", "/nonexistent/plan.json"],
     "--plan /nonexistent/plan.json: cannot read it"),
    (["--baseline", "http://a", "--speculative", "http://b", "--top-k", "0"], "--top-k must be >= 1"),
    (["--baseline", "http://a", "--speculative", "http://b", "--top-p", "1.5"], "top_p"),
    (["--baseline", "http://a", "--speculative", "http://b", "--extra-body", "{min_p: 1}"], "--extra-body is not valid"),
    (["--baseline", "http://a", "--speculative", "http://b", "--extra-body", "[1]"], "must be a JSON object"),
    (["--baseline", "http://a", "--speculative", "http://b", "--extra-body", '{"temperature": 1}'],
     "--extra-body may not set temperature"),
])
def test_bad_options_are_one_line_errors(args, msg, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_unreachable_endpoint_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--baseline", "http://127.0.0.1:9", "--speculative", "http://127.0.0.1:9",
              "--out", str(tmp_path / "r"), "--no-lossless"])
    assert exc.value.code == 2
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize("args,msg", [
    (["--qps", "nan"], "--qps"), (["--qps", "inf"], "--qps"), (["--qps", "-1"], "--qps"),
    (["--qps", "1e-300"], "--qps"), (["--qps", "1e300"], "--qps"), (["--temperatures", "nan"], "--temperatures"),
    (["--temperatures", "-0.5"], "--temperatures"), (["--temperatures", "2.5"], "--temperatures"),
    (["--seed", "-1"], "--seed"), (["--num-requests", "1000000000"], "--num-requests"),
    (["--duration", "inf"], "--duration"), (["--duration", "1e300"], "--duration"),
    (["--client-workers", "100000"], "--client-workers"), (["--extra-body", '{"x": "\\ud800"}'], "--extra-body"),
    (["--extra-body", '{"x": NaN}'], "--extra-body"), (["--extra-body", "[" * 5000 + "]" * 5000], "--extra-body"),
    (["--workload", "chat:nan"], "weight"), (["--workload-temperatures", "0:nan"], "--workload-temperatures"),
    (["--timeout", "nan"], "--timeout"), (["--burstiness", "0"], "--burstiness"),
    (["--resume", "--overwrite"], "give one"),
])
def test_hostile_numbers_and_json_are_one_line_errors(args, msg, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--baseline", "http://a", "--speculative", "http://b", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err



def test_out_that_is_a_file_or_a_foreign_directory_is_refused(tmp_path, capsys):
    f = tmp_path / "f.txt"
    f.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    base = ["bench", "--baseline", "http://127.0.0.1:9", "--speculative", "http://127.0.0.1:9", "--no-lossless"]
    for out, msg in ((f, "is a file"), (f / "run", "which is a file"), (other, "--out NEW")):
        assert exit_code([*base, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    assert (other / "keep.txt").read_text() == "mine" and sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    run = tmp_path / "run"
    assert exit_code([*base, "--out", str(run)]) == 2  # unreachable, but the run directory is written
    assert "cannot reach" in capsys.readouterr().err and (run / "config.json").exists()
    assert exit_code([*base, "--out", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert exit_code([*base, "--out", str(run), "--overwrite"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_generated_flag_values_exit_2_with_one_line_never_a_traceback(tmp_path, capsys):
    """Fixed-seed generated values for every numeric and JSON flag: a clean exit 2 (refused, or accepted and then
    the endpoint is unreachable), never a traceback."""
    import random

    rng = random.Random(13)
    numbers = ["0", "-1", "1", "2.5", "nan", "inf", "-inf", "1e-300", "1e300", "1e400", "9" * 40, "0x10", "", " ",
               "1,2", "abc", "1e5", "3.0", "-0", "2147483648"]
    flags = ["--qps", "--temperatures", "--num-requests", "--duration", "--repeats", "--k", "--seed", "--max-tokens",
             "--timeout", "--error-budget", "--startup-timeout", "--warmup", "--burstiness", "--concurrency",
             "--top-p", "--top-k", "--production-temperature", "--gpu-memory-gib", "--client-workers",
             "--workload-temperatures", "--workload"]
    json_values = ['{"a": 1}', "{}", "[]", "null", "5", '{"a": NaN}', '{"a": Infinity}', '{"a": "\\udfff"}',
                   '{"a": ' + "[" * 3000 + "]" * 3000 + "}", '{"a": 1e400}', "{", '{"top_p": 1}']
    base = ["bench", "--baseline", "http://127.0.0.1:9", "--speculative", "http://127.0.0.1:9", "--no-lossless"]
    for i in range(200):
        args = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.15:
                args += ["--extra-body", rng.choice(json_values)]
            else:
                flag = rng.choice(flags)
                value = rng.choice(numbers)
                if flag == "--workload":
                    value = "chat:" + value
                elif flag == "--workload-temperatures":
                    value = f"{rng.choice(numbers)}:{value}"
                args += [flag, value]
        if "--num-requests" in args and "--duration" in args:
            args = args[: args.index("--duration")]
        code = exit_code([*base, "--out", str(tmp_path / f"r{i}"), *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert "Traceback" not in err and err.startswith("error:") or "Usage:" in err, (args, err)


def test_config_file_and_the_old_temperature_flag(tmp_path, capsys):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text("baseline_url: http://127.0.0.1:9\nspeculative_url: http://127.0.0.1:9\nlossless: 'off'\n")
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "cannot reach" in capsys.readouterr().err  # the file's endpoints were used
    cfg.write_text("baseline_url: http://a\nspeculative_url: http://b\nqps_typo: [1]\n")
    with pytest.raises(SystemExit):
        main(["bench", "--config", str(cfg)])
    assert "unknown field(s) qps_typo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--baseline", "http://a", "--speculative", "http://b", "--temperature-mix", "0:1",
              "--workload-temperatures", "0:1"])
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--baseline", "http://a", "--speculative", "http://b", "--workload-temperatures", "x:1"])
    assert "--temperature-mix: expected TEMP:WEIGHT" in capsys.readouterr().err


def test_a_run_directorys_config_json_is_a_config(tmp_path, capsys):
    import json
    from pathlib import Path

    recorded = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "v1-bench" /
                           "config.json").read_text())
    recorded["bench"].update(baseline_url="http://127.0.0.1:9", speculative_url="http://127.0.0.1:9", workload="chat")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(recorded))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-lossless"])
    assert exc.value.code == 2 and "cannot reach" in capsys.readouterr().err
