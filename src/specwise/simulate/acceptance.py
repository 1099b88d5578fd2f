"""The acceptance a simulation runs with: from the user's rates, mean length or profile file, else a default.

Sources (docs/reference/theory-and-calibration.md §1.5-1.6): the i.i.d. mean acceptance length
E[L] = (1 - alpha^(k+1)) / (1 - alpha) (Leviathan et al. 2023, Eq. 1) inverted for alpha; per-position shapes
of EAGLE and n-gram drafting on ShareGPT from the SpecDecode-Bench traces; the draft-model default from
:func:`specwise.simulate.defaults.default_acceptance`. Every profile built here says it is ASSUMED.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from specwise.errors import UserError
from specwise.schemas.acceptance import (
    AcceptanceClass,
    AcceptanceProfile,
    check_unconditional_rates,
    conditional_from_unconditional,
    mean_acceptance_length,
)
from specwise.schemas.base import Source
from specwise.simulate.defaults import default_acceptance

DEFAULT_HETEROGENEITY = 0.5


def iid_alpha_for_length(length: float, k: int) -> float:
    """alpha with (1 - alpha^(k+1)) / (1 - alpha) = length (docs/reference/theory-and-calibration.md §1.6), by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if mean_acceptance_length([mid], k) < length:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def method_default_acceptance(method: str, target: str, draft: str | None) -> AcceptanceProfile:
    """The assumed acceptance of ``method`` when the user gives none (literature values, labelled)."""
    m = method.lower()
    if m in ("eagle", "eagle3", "mtp") or m.endswith("_mtp"):
        # SpecDecode-Bench EAGLE, Llama-3.1-8B, ShareGPT: conditional .60 .60 .65 .69 .73 (reference §1.6)
        return AcceptanceProfile(target=target, draft=draft, method=m, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[0.60, 0.60, 0.65, 0.69, 0.73],
                                                          heterogeneity=0.5)],
                                 notes=["ASSUMED: EAGLE on Llama-3.1-8B ShareGPT per-position shape "
                                        "(docs/reference/theory-and-calibration.md §1.6); measure yours with "
                                        "specwise estimate"])
    if m in ("ngram", "[ngram]", "ngram_gpu", "suffix"):
        # n-gram ShareGPT: P(match)=0.2 (SpecDecode-Bench simulator) and a_1=.13 -> alpha_1|match=.65,
        # then .77 .82 .87 .88 (reference §1.6)
        return AcceptanceProfile(target=target, draft=draft, method=m, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[0.65, 0.77, 0.82, 0.87, 0.88],
                                                          match_probability=0.2, heterogeneity=0.3)],
                                 notes=["ASSUMED: vLLM n-gram on ShareGPT, match-or-nothing mixture "
                                        "(docs/reference/theory-and-calibration.md §1.6)"])
    return default_acceptance(target, draft or "draft")


def acceptance_profile(*, rates: list[float] | None, length: float | None, profile_path: str | Path | None, k: int,
                       method: str, heterogeneity: float | None, target: str,
                       draft: str | None) -> AcceptanceProfile:
    """The acceptance profile the inputs describe (exactly one of rates / length / file, else a default).

    ``rates`` are vLLM's unconditional per-position rates a_1..a_k (already checked by SimulateConfig).
    """
    given = [x is not None for x in (rates, length, profile_path)]
    if sum(given) > 1:
        raise UserError("give only one of --acceptance-rates, --acceptance-length, --acceptance-profile")
    het = DEFAULT_HETEROGENEITY if heterogeneity is None else heterogeneity
    if profile_path is not None:
        path = Path(profile_path)
        if not path.exists():
            raise UserError(f"acceptance profile '{path}' not found")
        try:
            prof = AcceptanceProfile.model_validate_json(path.read_text())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise UserError(f"{path}: not an AcceptanceProfile JSON ({where + ': ' if where else ''}"
                            f"{err.get('msg')}); write one with `specwise estimate --profile-out`") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not an AcceptanceProfile JSON ({str(exc).splitlines()[0]})") from None
        if heterogeneity is not None:
            prof = prof.model_copy(update={"classes": [c.model_copy(update={"heterogeneity": heterogeneity})
                                                       for c in prof.classes]})
        return prof
    if rates is not None:
        check_unconditional_rates(rates, "--acceptance-rates")
        text = ",".join(f"{x:g}" for x in rates)
        return AcceptanceProfile(target=target, draft=draft, method=method, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=conditional_from_unconditional(rates),
                                                          heterogeneity=het)],
                                 notes=[f"from --acceptance-rates {text} (unconditional a_i, vLLM meaning)"])
    if length is not None:
        if not 1.0 <= length <= k + 1:
            raise UserError(f"--acceptance-length must lie in [1, k+1] = [1, {k + 1}] (it includes the bonus token)")
        alpha = iid_alpha_for_length(length, k)
        return AcceptanceProfile(target=target, draft=draft, method=method, source=Source.assumed,
                                 classes=[AcceptanceClass(conditional=[alpha], heterogeneity=het)],
                                 notes=[f"i.i.d. alpha={alpha:.3f} solving E[L(k={k})]={length} (Leviathan Eq. 1)"])
    return method_default_acceptance(method, target, draft)
