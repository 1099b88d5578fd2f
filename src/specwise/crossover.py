"""The load where speculation stops paying: one definition shared by ``simulate`` and ``bench``.

The crossover is the first load (QPS, or requests in flight for closed-loop runs) where the speedup
(baseline latency / speculative latency) falls through 1 as load grows, linearly interpolated between
the two neighbouring loads. ``simulate`` applies it to its simulated sweep points and ``bench`` to its
measured comparisons, so a simulated and a measured crossover of the same deployment are directly
comparable. With confidence intervals (bench), the crossover is also bracketed by measured loads: the
highest load below it where the whole CI says "faster" and the lowest load above it where the whole CI
says "slower".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from specwise.schemas.base import Source
from specwise.schemas.results import Comparison, Crossover

PARITY = 1.0  # speedup at which speculation neither helps nor hurts


@dataclass(frozen=True)
class Crossing:
    """A downward crossing of ``level`` between points ``lower`` and ``upper`` (indices into the input)."""

    load: float
    lower: int
    upper: int
    fraction: float  # where between lower (0) and upper (1) the interpolated crossing lies


def downward_crossings(loads: Sequence[float], speedups: Sequence[float | None],
                       level: float = PARITY) -> list[Crossing]:
    """Every place where ``speedups`` falls from >= level to < level, in load order as given.

    Points without a speedup are skipped (their neighbours are paired across them). ``loads`` must be
    ascending.
    """
    valid = [i for i, s in enumerate(speedups) if s is not None]
    out = []
    for i, j in zip(valid, valid[1:]):
        sa, sb = speedups[i], speedups[j]
        assert sa is not None and sb is not None
        if sa >= level > sb:
            f = (sa - level) / (sa - sb)
            out.append(Crossing(load=loads[i] + f * (loads[j] - loads[i]), lower=i, upper=j, fraction=f))
    return out


def first_crossing(loads: Sequence[float], speedups: Sequence[float | None],
                   level: float = PARITY) -> Crossing | None:
    """The first downward crossing of ``level`` (the crossover), or None when there is none in range."""
    found = downward_crossings(loads, speedups, level)
    return found[0] if found else None


def describe_crossover(loads: Sequence[float], speedups: Sequence[float | None], *, source: Source,
                       temperature: float | None = None, baseline_role: str = "baseline",
                       load_kind: str = "qps", ci_low: Sequence[float | None] | None = None,
                       ci_high: Sequence[float | None] | None = None) -> Crossover:
    """The crossover of one speedup-vs-load curve in the shared schema (points in ascending load)."""
    loads = [float(x) for x in loads]
    valid = [s for s in speedups if s is not None]
    crossings = downward_crossings(loads, speedups)
    notes: list[str] = []
    low = high = value = None
    if not valid:
        position = "no_data"
    elif crossings:
        position = "within"
        first = crossings[0]
        value = first.load
        if ci_low is not None and ci_high is not None:
            # loads at or below the crossing whose whole CI lies above parity, and at or above it wholly below
            faster = [loads[i] for i in range(first.lower + 1) if ci_low[i] is not None and ci_low[i] > PARITY]
            slower = [loads[i] for i in range(first.upper, len(loads))
                      if ci_high[i] is not None and ci_high[i] < PARITY]
            low = max(faster) if faster else None
            high = min(slower) if slower else None
        if len(crossings) > 1:
            notes.append("the speedup falls through 1 more than once ("
                         + ", ".join(f"~{c.load:.3g}" for c in crossings)
                         + "): noise or a non-monotone curve; the first crossing is reported")
    elif valid[0] < PARITY:
        position = "below_range"
        notes.append("speculation is slower already at the lowest load: the crossover is below the range")
    else:
        position = "above_range"
        notes.append("speculation is not slower at any load in the range: the crossover is above it")
    return Crossover(source=source, temperature=temperature, baseline_role=baseline_role, load=load_kind,
                     position=position, value=value, bracket_low=low, bracket_high=high, loads=loads,
                     speedups=list(speedups), notes=notes)


def crossovers_from_comparisons(comparisons: Sequence[Comparison], source: Source) -> list[Crossover]:
    """One crossover per (temperature, baseline, load kind) from per-load comparisons (open or closed loop).

    Comparisons without a load (a bench closed-loop run records none) locate nothing and are skipped.
    """
    groups: dict[tuple[float | None, str, str], list[Comparison]] = {}
    for c in comparisons:
        if c.load is not None:
            groups.setdefault((c.temperature, c.baseline_role, c.load_kind), []).append(c)
    out = []
    for (temp, role, kind), comps in sorted(groups.items(), key=lambda kv: (
            -1 if kv[0][0] is None else kv[0][0], kv[0][1] != "baseline", kv[0][2])):
        comps = sorted(comps, key=lambda c: c.load)  # type: ignore[arg-type, return-value]
        sp = [c.speedup_e2e_p50 for c in comps]
        out.append(describe_crossover([c.load for c in comps], [s.value for s in sp],  # type: ignore[misc]
                                      source=source, temperature=temp, baseline_role=role, load_kind=kind,
                                      ci_low=[s.ci_low for s in sp], ci_high=[s.ci_high for s in sp]))
    return out


def crossover_sentence(c: Crossover) -> str:
    """One line for people: where speculation stops paying, labelled with its source and confidence."""
    unit = "req/s" if c.load == "qps" else "requests in flight"
    temp = "workload mix" if c.temperature is None else f"T={c.temperature:g}"
    vs = "" if c.baseline_role == "baseline" else f", vs {c.baseline_role}"
    head = (f"{Source(c.source).value.capitalize()} crossover ({temp}{vs}; "
            "E2E P50 speedup = baseline / speculative)")
    loads = ", ".join(f"{x:g}" for x in c.loads)
    if c.position == "no_data":
        return f"{head}: no speedups to locate it"
    if c.position == "below_range":
        return f"{head}: speculation is slower already at the lowest load, {c.loads[0]:g} {unit}: below the range"
    if c.position == "above_range":
        return f"{head}: speculation is not slower at any load run ({loads} {unit}): above the range"
    first = first_crossing(c.loads, c.speedups)
    assert first is not None and c.value is not None
    text = (f"{head}: speculation stops being faster at ~{c.value:.3g} {unit} (interpolated between "
            f"{c.loads[first.lower]:g} and {c.loads[first.upper]:g} {unit})")
    if c.bracket_low is not None and c.bracket_high is not None:
        text += (f"; between {c.bracket_low:g} and {c.bracket_high:g} {unit} with 95% confidence "
                 f"(speedup CI wholly above 1 at {c.bracket_low:g}, wholly below 1 at {c.bracket_high:g})")
    elif c.bracket_low is not None:
        text += f"; faster with 95% confidence up to {c.bracket_low:g} {unit}, no load above it measured slower " \
                "with confidence"
    elif c.bracket_high is not None:
        text += f"; slower with 95% confidence from {c.bracket_high:g} {unit}, no load below it measured faster " \
                "with confidence"
    elif Source(c.source) == Source.measured:
        text += "; no load's speedup CI lies wholly on either side of 1 (add requests or --repeats)"
    return text
