"""``specwise report``: one self-contained HTML page (plus Markdown and JSON) of a decision and its evidence.

Public API (decide's ``--report`` calls the first):

* :func:`write_report` ``(decision, evidence, path)``: render and write the three outputs;
* :func:`~specwise.report.inputs.load_inputs` ``(paths)``: read decision / run / plan / profile / estimate /
  workload / monitor files into :class:`~specwise.report.inputs.ReportInputs`.

matplotlib and jinja2 (the ``report`` extra) are imported only when a report is rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specwise.report.inputs import ReportInputs, as_report_inputs, load_inputs

__all__ = ["ReportInputs", "load_inputs", "write_report"]


def write_report(decision: Any, evidence: Any, path: str | Path, *, markdown: str | Path | None = None,
                 json_path: str | Path | None = None) -> list[Path]:
    """Write ``path`` (HTML) and its Markdown and JSON twins (same stem unless given); returns the paths.

    ``decision`` is a :class:`~specwise.schemas.decision.Decision` or None; ``evidence`` is a ReportInputs,
    a list of input paths, or decide's Evidence (read by attribute: runs, plans, profiles, estimates).
    """
    from specwise.report.render import build_report, write_outputs

    inputs = as_report_inputs(decision, evidence)
    report = build_report(inputs)
    return write_outputs(report, Path(path), Path(markdown) if markdown else None,
                         Path(json_path) if json_path else None)
