"""vLLM version facts (config forms, keys, methods, defaults) read from ``data/vllm_versions.json``.

The facts are data, not code: a table of version ranges plus per-key, per-method and per-flag
intervals. Code asks questions ("does 0.16.0 know ``disable_by_batch_size``?") through
:func:`version_facts`, never by comparing version strings itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from specwise.errors import UserError

Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    """'0.8.2' -> (0, 8, 2); '0.10' -> (0, 10, 0); '0.8.5.post1' / 'v0.9.2' -> (0, 8, 5) / (0, 9, 2)."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-]?(?:post|rc|dev)\d*.*)?", text.strip())
    if not m:
        raise UserError(f"cannot read vLLM version '{text}': use the form 0.MINOR.PATCH, e.g. 0.33.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _in(version: Version, since: str | None, until: str | None) -> bool:
    lo = parse_version(since) if since else (0, 0, 0)
    return lo <= version and (until is None or version < parse_version(until))


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("specwise.catalog").joinpath("data/vllm_versions.json").read_text()
    return json.loads(text)


def newest_version() -> str:
    return str(_data()["newest"])


@dataclass(frozen=True)
class VersionFacts:
    """What one vLLM version accepts and does for speculative decoding."""

    version: str
    config_forms: tuple[str, ...]
    unknown_keys: str
    engine_by_method: dict[str, str]
    json_methods: tuple[str, ...] | None
    gpu_memory_utilization_default: float
    cudagraph_memory_counted: bool
    note: str

    @property
    def parsed(self) -> Version:
        return parse_version(self.version)

    def knows_key(self, key: str) -> bool:
        info = _data()["json_keys"].get(key)
        return bool(info) and _in(self.parsed, info.get("since"), info.get("until"))

    def known_keys(self) -> list[str]:
        return [k for k in _data()["json_keys"] if self.knows_key(k)]

    def method_available(self, method: str) -> bool:
        info = _data()["methods"].get(method)
        if info is None:
            return False
        return any(_in(self.parsed, a.get("since"), a.get("until")) for a in info["available"])

    def method_name(self, method: str) -> str:
        """The ``method`` value this version expects (e.g. 'deepseek_mtp' before 0.11.0)."""
        names = [n for n in _data()["methods"][method]["names"] if _in(self.parsed, n["since"], None)]
        return names[-1]["name"] if names else method

    def method_note(self, method: str) -> str:
        return str(_data()["methods"].get(method, {}).get("note", ""))

    def legacy_flag(self, json_key: str) -> str | None:
        """The legacy CLI flag for ``json_key`` if this version has it."""
        for flag, info in _data()["legacy_flags"].items():
            if info["json_key"] == json_key and _in(self.parsed, info["since"], info["until"]):
                return flag
        return None

    def knows_flag(self, flag: str) -> bool:
        """Whether this version's ``vllm serve`` has the engine flag (``engine_flags`` table)."""
        info = _data().get("engine_flags", {}).get(flag)
        return bool(info) and _in(self.parsed, info.get("since"), info.get("until"))

    def engine_modes(self, method: str, async_scheduling: bool | None = None) -> EngineModes | None:
        """Engine mode switches of this version when ``method`` is on (:func:`engine_modes_for`)."""
        return engine_modes_for(self.version, method, async_scheduling)

    def key_note(self, key: str) -> str:
        return str(_data()["json_keys"].get(key, {}).get("note", ""))

    def key_interval(self, key: str) -> tuple[str | None, str | None]:
        info = _data()["json_keys"].get(key, {})
        return info.get("since"), info.get("until")


@dataclass(frozen=True)
class EngineModes:
    """Engine mode of a default server and of a speculative one (``v2_async``, ``v1_sync``, ...), per version."""

    baseline: str
    speculative: str
    switches: list[str]
    avoid_flags: list[str]
    source: str


def _mode_name(runner: str, async_scheduling: bool) -> str:
    return f"{runner}_{'async' if async_scheduling else 'sync'}"


def engine_modes_for(version: str, method: str, async_scheduling: bool | None = None) -> EngineModes | None:
    """What turning ``method`` on changes in vLLM ``version``'s engine (``engine_modes`` table), or None if unknown.

    ``async_scheduling``: the speculative server's explicit ``--async-scheduling`` (True) or
    ``--no-async-scheduling`` (False) flag; None = the version's default for the method.
    """
    v = parse_version(version)
    table = _data().get("engine_modes", {}).get("ranges", [])
    row = next((r for r in table if _in(v, r["since"], r.get("until"))), None)
    key = {"eagle3": "eagle3", "deepseek_mtp": "mtp"}.get(method, method)
    if row is None or key not in row["methods"]:
        return None
    d, m = row["default"], row["methods"][key]
    spec_async = m["async_scheduling"]
    if async_scheduling is not None and (m["async_flag_allowed"] or not async_scheduling):
        spec_async = async_scheduling
    switches = []
    if m["model_runner"] != d["model_runner"]:
        switches.append(f"model runner {d['model_runner'].upper()} -> {m['model_runner'].upper()} "
                        "(the speculative server runs the older runner; not avoidable by a flag)")
    if spec_async != d["async_scheduling"]:
        switches.append(f"async scheduling {'on -> off' if d['async_scheduling'] else 'off -> on'}")
    avoid = []
    if d["async_scheduling"] and not spec_async and m["async_flag_allowed"]:
        avoid.append("--async-scheduling")
    return EngineModes(baseline=_mode_name(d["model_runner"], d["async_scheduling"]),
                       speculative=_mode_name(m["model_runner"], spec_async), switches=switches,
                       avoid_flags=avoid, source=m["source"])


def version_facts(version: str | None = None) -> VersionFacts:
    """Facts for ``version`` (default: the newest covered); UserError outside the covered range."""
    text = version or newest_version()
    v = parse_version(text)
    data = _data()
    if v < parse_version(data["oldest_with_speculation"]):
        raise UserError(
            f"vLLM {text} has no speculative decoding (it arrived in {data['oldest_with_speculation']}); "
            "upgrade vLLM or pick --vllm-version >= 0.4.1"
        )
    if v > parse_version(data["newest"]):
        raise UserError(
            f"vLLM {text} is newer than the newest version specwise knows ({data['newest']}); "
            f"pass --vllm-version {data['newest']} and check the release notes for changed keys"
        )
    for row in data["ranges"]:
        if _in(v, row["since"], row["until"]):
            return VersionFacts(
                version=text,
                config_forms=tuple(row["config_forms"]),
                unknown_keys=row["unknown_keys"],
                engine_by_method=dict(row["engine_by_method"]),
                json_methods=tuple(row["json_methods"]) if row.get("json_methods") else None,
                gpu_memory_utilization_default=float(row["gpu_memory_utilization_default"]),
                cudagraph_memory_counted=bool(row["cudagraph_memory_counted"]),
                note=row.get("note", ""),
            )
    raise UserError(f"no version facts for vLLM {text}")  # ranges are contiguous; defensive


def sglang_facts() -> dict[str, Any]:
    return dict(_data()["sglang"])


def ngram_proposer_facts(version: str | None = None) -> dict[str, Any]:
    """How ``method: "ngram"`` proposes in ``version`` (default: the newest covered): the row of
    ``ngram_proposer.rules`` for the engine that runs n-gram there, with its source in vLLM's code."""
    facts = version_facts(version)
    engine = facts.engine_by_method.get("ngram")
    for row in _data()["ngram_proposer"]["rules"]:
        if row["engine"] == engine and _in(facts.parsed, row["since"], row["until"]):
            return {**row, "version": facts.version}
    raise UserError(f"no n-gram proposer facts for vLLM {facts.version}; pass --vllm-version {newest_version()}")
