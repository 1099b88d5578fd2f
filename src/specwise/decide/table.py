"""One row of decide's rule table: a :class:`~specwise.schemas.findings.Finding` with rule, status and meaning."""

from __future__ import annotations

from typing import Any

from specwise.schemas.base import Source
from specwise.schemas.findings import Finding, RuleStatus, Severity


def finding(code: str, rule: str, status: RuleStatus, message: str, *, meaning: str | None = None,
            threshold: Any = None, observed: Any = None, unit: str | None = None, source: Source | None = None,
            severity: Severity | None = None, **evidence: Any) -> Finding:
    """A rule-table row; severity defaults to info for pass/unknown and warning for fail."""
    sev = severity or ("warning" if status == "fail" else "info")
    return Finding(code=code, rule=rule, status=status, message=message, meaning=meaning, threshold=threshold,
                   observed=observed, unit=unit, source=source, severity=sev,
                   evidence={k: v for k, v in evidence.items() if v is not None})
