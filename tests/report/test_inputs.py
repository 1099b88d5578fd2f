"""Reading report inputs: files recognised by schema, run directories, bad input."""

from __future__ import annotations

import json

import pytest

from specwise.errors import UserError
from specwise.report.inputs import as_report_inputs, load_inputs, read_run_dir

from . import builders as B


def test_files_are_recognised_by_their_schema(tmp_path):
    paths = {
        "d.json": B.decision().model_dump_json(),
        "sim.json": B.run("simulated").model_dump_json(),
        "plan.json": B.plans()[1].model_dump_json(),
        "profile.json": B.profile().model_dump_json(),
    }
    for name, text in paths.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "wl.yaml").write_text("name: from-yaml\ncategories: [{name: chat, share: 1, temperature: 0.7}]\n"
                                      "load: {typical: 1, peak: 2}\ndeployment: {target: x}\n")
    (tmp_path / "mon.jsonl").write_text('{"t": 0, "acceptance_rate": 0.6}\n{"t": 5, "acceptance_rate": 0.5}\n')
    run = B.run_dir(tmp_path / "run")
    inputs = load_inputs([tmp_path / n for n in paths] + [tmp_path / "wl.yaml", tmp_path / "mon.jsonl", run])
    assert inputs.decision.verdict == "BORDERLINE"
    assert [r.source for r in inputs.runs] == ["simulated", "measured"]
    assert len(inputs.plans) == 1 and len(inputs.profiles) == 1 and inputs.workload.name == "from-yaml"
    assert inputs.monitor[0][1][1]["acceptance_rate"] == 0.5
    assert len(inputs.runs[1].records) == 40 and inputs.runs[1].meta["python"] == "3.11"


def test_only_the_last_attempt_of_a_resumed_cell_counts(tmp_path):
    run = B.run_dir(tmp_path / "run")
    with (run / "records.jsonl").open("a") as f:
        rec = {"request_id": "again", "role": "speculative", "temperature": 0.0,
               "server_spec": {"draft_acceptance_rate": 0.1}}
        f.write(json.dumps({"cell": "speculative-0.0", "attempt": 1, "record": rec}) + "\n")
        f.write('{"cell": "torn')  # a line cut by a crash
    records = read_run_dir(run).records
    assert [r.request_id for r in records if r.temperature == 0.0] == ["again"]
    assert len(records) == 21


@pytest.mark.parametrize("content, name, message", [
    ("{not json", "x.json", "not valid JSON"),
    ('{"hello": 1}', "x.json", "not a specwise result"),
    ("a: [", "x.yaml", "not valid YAML"),
    ("nope\n", "x.jsonl", "line 1: not JSON"),
])
def test_bad_inputs_are_one_line_user_errors(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        load_inputs([tmp_path / name])


def test_missing_paths_and_incomplete_run_dirs(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_inputs([tmp_path / "absent.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="needs summary.json"):
        load_inputs([tmp_path / "empty"])
    run = B.run_dir(tmp_path / "run")
    with pytest.raises(UserError, match="pass its run directory"):
        load_inputs([run / "records.jsonl"])


def test_decides_evidence_is_read_by_attribute(tmp_path):
    """decide's Evidence (specwise.decide.evidence): runs wrap .run/.path/.command, plans are (plan, path)
    pairs, profiles wrap .profile/.path; read by attribute so report does not import decide."""
    from dataclasses import dataclass, field

    @dataclass
    class RunEvidence:
        run: object
        path: str | None = None
        command: str | None = None

    @dataclass
    class ProfileEvidence:
        profile: object
        path: str | None = None
        estimate: object = None

    @dataclass
    class Evidence:
        plans: list = field(default_factory=list)
        profiles: list = field(default_factory=list)
        runs: list = field(default_factory=list)
        workload: object = None

    run_dir = B.run_dir(tmp_path / "run")
    ev = Evidence(plans=[(B.plans()[1], "plan.json")], profiles=[ProfileEvidence(B.profile(), "p.json")],
                  runs=[RunEvidence(B.run("simulated"), command="specwise simulate --qps 1"),
                        RunEvidence(B.run("measured"), path=str(run_dir)), B.run("simulated")])
    inputs = as_report_inputs(B.decision(), ev)
    assert [r.source for r in inputs.runs] == ["simulated", "measured", "simulated"]
    assert inputs.runs[0].command == "specwise simulate --qps 1" and len(inputs.runs[1].records) == 40
    assert inputs.plans[0][0] == "plan.json" and inputs.profiles[0][0] == "p.json"
    assert inputs.workload is not None and inputs.decision.verdict == "BORDERLINE"


def test_a_decision_brings_the_evidence_it_lists(tmp_path):
    run = B.run_dir(tmp_path / "run")
    decision = B.decision()
    decision.evidence[0].path = "run"  # relative to the decision file's directory
    (tmp_path / "d.json").write_text(decision.model_dump_json())
    inputs = load_inputs([tmp_path / "d.json"])
    assert [r.path for r in inputs.runs] == [str(tmp_path / "run")] and inputs.runs[0].records
    assert "Also read the evidence the decision lists" in inputs.notes[0]
    # given explicitly: read once; --no-follow: not read
    assert len(load_inputs([tmp_path / "d.json", run]).runs) == 1
    assert load_inputs([tmp_path / "d.json"], follow_decision=False).runs == []
