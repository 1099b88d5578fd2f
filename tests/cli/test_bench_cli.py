import pytest

from specwise.cli.main import main


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
