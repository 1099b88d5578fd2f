"""Spec-decode counters from a vLLM V1 `/metrics` page, as the integration tests need them.

Interim helper: `specwise bench` gets its own scraper (`specwise.metrics.prometheus`); the tests switch to it once it
is merged. Naming rules from vllm-speculative-decoding.md §2.1/§2.3: counters are exposed with `_total`, `_created`
samples are ignored, series are summed over the `engine` label, per-position counts carry `position`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "vllm:spec_decode_"


@dataclass
class SpecCounters:
    num_drafts: float = 0.0
    num_draft_tokens: float = 0.0
    num_accepted_tokens: float = 0.0
    accepted_per_position: dict[int, float] = field(default_factory=dict)

    def minus(self, earlier: "SpecCounters") -> "SpecCounters":
        return SpecCounters(
            self.num_drafts - earlier.num_drafts,
            self.num_draft_tokens - earlier.num_draft_tokens,
            self.num_accepted_tokens - earlier.num_accepted_tokens,
            {p: v - earlier.accepted_per_position.get(p, 0.0) for p, v in self.accepted_per_position.items()},
        )

    def per_position_rate(self) -> list[float]:
        return [self.accepted_per_position[p] / self.num_drafts for p in sorted(self.accepted_per_position)]


def parse_spec_counters(metrics_text: str) -> SpecCounters:
    counters = SpecCounters()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if not sample.name.startswith(PREFIX) or not sample.name.endswith("_total"):
                continue
            stem = sample.name[len(PREFIX):-len("_total")]
            if stem == "num_drafts":
                counters.num_drafts += sample.value
            elif stem == "num_draft_tokens":
                counters.num_draft_tokens += sample.value
            elif stem == "num_accepted_tokens":
                counters.num_accepted_tokens += sample.value
            elif stem == "num_accepted_tokens_per_pos":
                position = int(sample.labels["position"])
                counters.accepted_per_position[position] = (
                    counters.accepted_per_position.get(position, 0.0) + sample.value
                )
    return counters
