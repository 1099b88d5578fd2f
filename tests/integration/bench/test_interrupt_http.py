"""Ctrl-C during `specwise bench` keeps everything measured; `--resume` finishes the run."""

import json
import signal
import subprocess
import sys
import time

import pytest

from .sse_server import ServerBehaviour, SSEServer

pytestmark = pytest.mark.integration


def test_sigint_keeps_records_and_resume_completes(tmp_path):
    out = tmp_path / "run"
    with SSEServer(ServerBehaviour(itl_s=0.01)) as base, SSEServer(ServerBehaviour(itl_s=0.01)) as spec:
        args = [sys.executable, "-m", "specwise", "bench", "--baseline", base.url, "--speculative", spec.url,
                "--qps", "5,10", "--temperatures", "0", "--num-requests", "30", "--max-tokens", "16", "--k", "3",
                "--no-lossless", "--out", str(out), "--json"]
        # A test run started in the background of a non-interactive shell inherits SIGINT ignored (and Python then
        # installs no KeyboardInterrupt handler); the user at a terminal has it at its default, so give it that.
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 60
        # interrupt once some records are on disk; cells of 6 s and 3 s leave the interrupt ~10 s of run to land in,
        # even on a loaded 2-core machine (at 10-20 req/s a whole run once finished before the poll saw records)
        while time.time() < deadline:
            if (out / "records.jsonl").exists() and len((out / "records.jsonl").read_text().splitlines()) > 10:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "--resume" in err and "Traceback" not in err
        partial = json.loads((out / "summary.json").read_text())
        assert partial["complete"] is False
        kept = len((out / "records.jsonl").read_text().splitlines())
        assert kept > 10
        done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["complete"] is True and len(result["cells"]) == 4
    assert all(c["requests_ok"] == 30 for c in result["cells"])
