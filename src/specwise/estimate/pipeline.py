"""The estimation run: continuations, one teacher-forced pass per model, per-request records, summary.

For every request the target generates a continuation at each context temperature (or the request's
supplied ``response`` is used), then each model runs once over prompt + continuation. Acceptance depends on
the text it is measured along: greedy text is more predictable than text sampled at T = 1, and an argmax
draft's acceptance at T = 1 measured on greedy text comes out several points too high. Each evaluated
temperature therefore uses the continuation generated at the nearest context temperature (by default the
temperatures rounded to 0.5: three generations for any grid in [0, 1]), while all temperatures of a band
share one teacher-forced pass. From those logits
the per-position acceptances for every temperature (:mod:`.acceptance`) and the n-gram proposals with
their acceptances (:mod:`.ngram`) are computed and appended to ``requests.jsonl`` in the output
directory, one line per request, so an interrupted run resumes where it stopped. The summary
(:func:`summarize_records`) is computed from those lines alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from specwise.errors import UserError
from specwise.estimate.acceptance import (
    RequestChain,
    Truncation,
    argmax_draft_acceptance,
    chain_from_positions,
    lossless_acceptance,
    recommend_k,
    replay_steps,
    speedup_batch1,
    summarize,
)
from specwise.estimate.ngram import ProposerRules, matched_prefix, ngram_chain, replay_proposals
from specwise.estimate.prompts import PromptRecord, prompt_token_ids, response_token_ids
from specwise.schemas.estimate import (
    CategoryEstimate,
    EstimateSettings,
    MethodEstimate,
    QuantizationEstimate,
    TemperatureEstimate,
)

RECORDS_FILE = "requests.jsonl"
META_FILE = "settings.json"


@dataclass
class Models:
    target: Any  # LoadedModel as deployed (quantised if asked)
    draft: Any | None
    target_reference: Any | None = None  # unquantised target when the target is quantised
    draft_reference: Any | None = None  # unquantised draft when the draft is quantised
    vocab: int | None = None


def build_models(settings: EstimateSettings, device: str, dtype: Any) -> Models:
    from specwise.estimate.models import check_same_vocab, load_model, quantized_copy, truncated_copy

    base = load_model(settings.target, device, dtype)
    target = quantized_copy(base, settings.target_quantize) if settings.target_quantize else base
    needs_draft = "draft_model" in settings.methods
    # source: the draft before --draft-quantize; reference_source: the same draft as the unquantised
    # deployment would have it (a self-derived draft of a quantised target shares the quantised weights)
    source = reference_source = None
    if settings.draft:
        source = reference_source = load_model(settings.draft, device, dtype)
    elif settings.draft_layers:
        source = truncated_copy(target, settings.draft_layers)
        reference_source = truncated_copy(base, settings.draft_layers) if settings.target_quantize else source
    elif settings.draft_quantize:
        source, reference_source = target, base  # self-speculation with a quantised copy of the target
    if needs_draft and source is None:
        raise UserError("the draft_model method needs --draft MODEL, --draft-layers N or --draft-quantize SCHEME")
    draft = draft_reference = None
    if source is not None and needs_draft:
        draft = quantized_copy(source, settings.draft_quantize) if settings.draft_quantize else source
        if settings.draft_quantize or settings.target_quantize:
            draft_reference = reference_source
    models = Models(target=target, draft=draft, target_reference=base if settings.target_quantize else None,
                    draft_reference=draft_reference)
    vocab = base.model.get_output_embeddings().weight.shape[0]
    if draft is not None:
        vocab = min(vocab, check_same_vocab(target, draft))
    models.vocab = int(vocab)
    return models


def _check_meta(out_dir: Path, settings: EstimateSettings, resume: bool) -> set[str]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output-dir {out_dir}: cannot create it ({exc.strerror}); give a writable directory") from None
    meta = out_dir / META_FILE
    records = out_dir / RECORDS_FILE
    if resume and meta.is_file():
        try:
            previous = EstimateSettings.model_validate_json(meta.read_text())
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0][:120]
            raise UserError(f"{meta} is not a readable estimate settings file ({first}); use another --output-dir "
                            "or drop --resume to start over") from None
        if previous != settings:
            raise UserError(f"{out_dir} holds an estimate with different settings; use another --output-dir "
                            "or drop --resume to start over")
        done = set()
        if records.is_file():
            for line in records.read_text().splitlines():
                if line.strip():
                    try:
                        done.add(json.loads(line)["id"])
                    except (json.JSONDecodeError, KeyError):
                        continue  # a line cut by an interruption: recomputed
        return done
    meta.write_text(settings.model_dump_json(indent=2))
    records.write_text("")
    return set()


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / RECORDS_FILE
    out = []
    seen = set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec["id"] not in seen:
            seen.add(rec["id"])
            out.append(rec)
    return out


def _round(a: np.ndarray) -> list:
    return np.round(a, 5).tolist()


def generate_continuations(target: Any, prompts: Sequence[list[int]], max_new: Sequence[int], temperature: float,
                           seed: int, truncation: Truncation = Truncation()) -> list[list[int]]:
    """Batched target generation (left padding) at ``temperature``; each cut after EOS.

    Sampling uses the request's top-k/top-p (``truncation``) so the text is what the deployment would
    produce; transformers applies temperature, then top-k, then top-p on the renormalised rest, keeping
    ties at the k-th logit and the most likely token, like vLLM's ``apply_top_k_top_p``.
    """
    import torch

    tok = target.tokenizer
    model = target.model
    width = max(len(p) for p in prompts)
    pad = tok.pad_token_id
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(max_new_tokens=max(max_new), pad_token_id=pad, eos_token_id=tok.eos_token_id)
    if temperature > 0:  # the request's top-k/top-p only, none from the checkpoint's generation config
        kwargs.update(do_sample=True, temperature=temperature, top_k=truncation.top_k, top_p=truncation.top_p,
                      repetition_penalty=1.0)
    else:
        kwargs.update(do_sample=False, repetition_penalty=1.0)
    with torch.no_grad():
        out = model.generate(input_ids=ids.to(target.device), attention_mask=mask.to(target.device), **kwargs)
    result = []
    for i in range(len(prompts)):
        cont = out[i, width:].tolist()[: max_new[i]]
        if tok.eos_token_id in cont:
            cont = cont[: cont.index(tok.eos_token_id) + 1]
        result.append(cont)
    return result


def teacher_forced_logits(model: Any, sequences: Sequence[list[int]], starts: Sequence[int], lengths: Sequence[int],
                          device: str, vocab: int) -> list[Any]:
    """Logits predicting continuation tokens: rows start-1 .. start+n-2 of each right-padded sequence."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    return [logits[i, starts[i] - 1 : starts[i] - 1 + lengths[i], :vocab] for i in range(len(sequences))]


def context_bands(temperatures: Sequence[float], context_temperatures: Sequence[float]) -> dict[float, list[int]]:
    """Which generated contexts each evaluated temperature uses: the nearest context temperature (ties: lower)."""
    bands: dict[float, list[int]] = {}
    for j, t in enumerate(temperatures):
        nearest = min(sorted(context_temperatures), key=lambda c: abs(c - t))
        bands.setdefault(nearest, []).append(j)
    return bands


def auto_context_temperatures(temperatures: Sequence[float], exact: bool = False) -> list[float]:
    """Default context temperatures: every evaluated temperature rounded to the nearest 0.5, or the evaluated
    temperatures themselves when ``exact`` (the n-gram method: its walk is the text sampled at T, see
    :func:`specwise.estimate.ngram.matched_prefix`)."""
    import math

    if exact:
        return sorted(set(float(t) for t in temperatures))
    return sorted({math.floor(t * 2 + 0.5) / 2 for t in temperatures})


def truncation_of(settings: EstimateSettings) -> Truncation:
    return Truncation(top_k=settings.top_k, top_p=settings.top_p)


def _pair_record(t_rows: Any, d_rows: Any, temps: Sequence[float], truncation: Truncation) -> dict[str, list]:
    return {"lossless": _round(lossless_acceptance(t_rows, d_rows, temps, truncation)),
            "argmax": _round(argmax_draft_acceptance(t_rows, d_rows, temps, truncation))}


def ngram_rules(settings: EstimateSettings) -> ProposerRules:
    """The n-gram proposer of the vLLM version the estimate is for (``settings.vllm_version``)."""
    return ProposerRules.for_version(settings.vllm_version)


def _ngram_records(model: Any, rows: Sequence[Any], prompts: Sequence[list[int]], conts: Sequence[list[int]],
                   settings: EstimateSettings, temps: Sequence[float], device: str, vocab: int,
                   batch_size: int = 16) -> list[dict[str, Any]]:
    """n-gram chains for a batch, with the target's logits taken along each proposal's own branch.

    Draft i of a step starting at t is verified in the context prompt + y_<t + proposal_<i. Where the
    proposal agrees with the continuation y that is the teacher-forced context; where it diverges
    (common at T > 0, where y is sampled but the proposal is a deterministic copy), the continuation's
    logits would condition on the wrong text and understate acceptance, so the target runs once more
    over prompt + y_<t + proposal_<(L-1) for those starts (batched). So it does for proposals that run
    past the end of the text (EOS or the budget: vLLM drafts there and counts them, see
    :mod:`specwise.estimate.ngram`): no teacher-forced row exists there.
    """
    rules = ngram_rules(settings)
    replays = [replay_proposals(prompts[r], conts[r], settings.k_max, settings.prompt_lookup_min,
                                settings.prompt_lookup_max, rules, settings.max_model_len)
               for r in range(len(conts))]
    truncation = truncation_of(settings)
    chains = [ngram_chain(rows[r], proposals, lengths, temps, truncation)
              for r, (proposals, lengths) in enumerate(replays)]
    branches = []  # (request, start t, branch sequence, rows wanted)
    for r, (proposals, lengths) in enumerate(replays):
        cont = conts[r]
        for t in np.nonzero(lengths > 1)[0]:
            length = int(lengths[t])
            head = proposals[t, : length - 1].tolist()
            if head == list(cont[t : t + length - 1]) and t + length <= len(cont):
                continue
            # Rows up to the first token off the text are teacher-forced; past it only a surviving prefix
            # matters (counters use cumulative products). At T = 0 most diverging proposals are already
            # rejected on the text, and skipping their branches keeps CPU runs fast.
            off = next((i for i, x in enumerate(head) if t + i >= len(cont) or x != cont[t + i]), len(head))
            if not np.prod(chains[r][:, t, : min(off + 1, len(cont) - t)], axis=1).any():
                continue
            branches.append((r, int(t), prompts[r] + list(cont[:t]) + head, length - 1))
    for start in range(0, len(branches), batch_size):
        chunk = branches[start : start + batch_size]
        logits = teacher_forced_logits(model, [b[2] for b in chunk], [len(b[2]) - b[3] + 1 for b in chunk],
                                       [b[3] for b in chunk], device, vocab)
        for (r, t, _, n_rows), branch_rows in zip(chunk, logits):
            proposed = replays[r][0][t, 1 : 1 + n_rows]
            for i in range(n_rows):
                chains[r][:, t, i + 1] = _proposal_row(branch_rows[i : i + 1], proposed[i : i + 1], temps,
                                                       truncation)
    out = []
    for (proposals, lengths), chain, cont in zip(replays, chains, conts):
        sparse = {str(t): _round(chain[:, t, : lengths[t]]) for t in np.nonzero(lengths)[0]}
        out.append({"lengths": lengths.tolist(), "chain": sparse, "rules": rules.name,
                    "prefill_plain": rules.prefill_plain, "matched": matched_prefix(proposals, lengths, cont).tolist()})
    return out


def _proposal_row(rows: Any, proposed: np.ndarray, temps: Sequence[float],
                  truncation: Truncation) -> np.ndarray:
    from specwise.estimate.acceptance import proposal_acceptance

    return proposal_acceptance(rows, proposed, temps, truncation)[:, 0]


def _context_entries(models: Models, prompts: Sequence[list[int]], conts: Sequence[list[int]],
                     settings: EstimateSettings, temp_indices: Sequence[int],
                     context_temperature: float | None) -> list[dict[str, Any]]:
    """Teacher-forced passes of every model over prompt + continuation; per-position acceptances."""
    temps = [settings.temperatures[j] for j in temp_indices]
    keep = [i for i, c in enumerate(conts) if c]
    entries: list[dict[str, Any]] = [
        {"temperature": context_temperature, "temps": list(temp_indices), "continuation": list(c),
         "pairs": {}, "ngram": {}} for c in conts]
    if not keep:
        return entries
    seqs = [prompts[i] + list(conts[i]) for i in keep]
    starts = [len(prompts[i]) for i in keep]
    lens = [len(conts[i]) for i in keep]
    device, vocab = models.target.device, models.vocab or 0
    rows = {"target": teacher_forced_logits(models.target.model, seqs, starts, lens, device, vocab)}
    if models.draft is not None:
        rows["draft"] = teacher_forced_logits(models.draft.model, seqs, starts, lens, device, vocab)
    if models.target_reference is not None:
        rows["target_ref"] = teacher_forced_logits(models.target_reference.model, seqs, starts, lens, device, vocab)
    if models.draft_reference is not None:
        rows["draft_ref"] = teacher_forced_logits(models.draft_reference.model, seqs, starts, lens, device, vocab)
    for j, i in enumerate(keep):
        entry = entries[i]
        if "draft" in rows:
            entry["pairs"]["deployed"] = _pair_record(rows["target"][j], rows["draft"][j], temps,
                                                      truncation_of(settings))
            if "target_ref" in rows or "draft_ref" in rows:
                t_ref = rows.get("target_ref", rows["target"])[j]
                d_ref = rows.get("draft_ref", rows["draft"])[j]
                entry["pairs"]["reference"] = _pair_record(t_ref, d_ref, temps, truncation_of(settings))
    if "ngram" in settings.methods:
        kept_prompts = [prompts[i] for i in keep]
        kept_conts = [list(conts[i]) for i in keep]
        for which, key, model in (("deployed", "target", models.target),
                                  ("reference", "target_ref", models.target_reference)):
            if key not in rows:
                continue
            records = _ngram_records(model.model, rows[key], kept_prompts, kept_conts, settings, temps, device, vocab)
            for j, i in enumerate(keep):
                entries[i]["ngram"][which] = records[j]
    return entries


def process_batch(models: Models, batch: Sequence[PromptRecord], settings: EstimateSettings) -> list[dict[str, Any]]:
    """Records for one batch of requests (see module docstring).

    A request with a supplied response has one context (the response) serving every temperature; the others
    get one generated continuation per context temperature, serving the temperatures nearest to it.
    """
    tok = models.target.tokenizer
    prompts = [prompt_token_ids(r, tok, settings.wrap_plain_as_chat) for r in batch]
    max_new = [min(r.max_tokens or settings.max_new_tokens, settings.max_new_tokens) for r in batch]
    contexts: list[list[dict[str, Any]]] = [[] for _ in batch]
    with_response = [i for i, r in enumerate(batch) if r.response is not None or r.response_token_ids is not None]
    if with_response:
        conts = [response_token_ids(batch[i], tok)[: max_new[i]] for i in with_response]
        entries = _context_entries(models, [prompts[i] for i in with_response], conts, settings,
                                   list(range(len(settings.temperatures))), None)
        for i, e in zip(with_response, entries):
            contexts[i].append(e)
    todo = [i for i, r in enumerate(batch) if r.response is None and r.response_token_ids is None]
    if todo:
        for c_temp, indices in context_bands(settings.temperatures, settings.context_temperatures).items():
            generated = generate_continuations(models.target, [prompts[i] for i in todo], [max_new[i] for i in todo],
                                               c_temp, settings.seed + hash_ids([batch[i].id for i in todo]),
                                               truncation_of(settings))
            entries = _context_entries(models, [prompts[i] for i in todo], generated, settings, indices, c_temp)
            for i, e in zip(todo, entries):
                contexts[i].append(e)
    return [{"id": r.id, "category": r.category, "prompt_tokens": len(prompts[i]),
             "from_response": i in with_response, "contexts": contexts[i]} for i, r in enumerate(batch)]


def record_tokens(record: dict[str, Any]) -> int:
    return sum(len(c["continuation"]) for c in record["contexts"])


def hash_ids(ids: Sequence[str]) -> int:
    """A stable (not Python-hash-randomised) seed offset for a batch."""
    import zlib

    return zlib.crc32("\x00".join(ids).encode()) % 1_000_000


def run_estimation(models: Models, prompts: Sequence[PromptRecord], settings: EstimateSettings, out_dir: Path,
                   resume: bool, batch_size: int,
                   on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Process every pending request in batches, appending records as they are produced."""
    done = _check_meta(out_dir, settings, resume)
    pending = [p for p in prompts if p.id not in done]
    path = out_dir / RECORDS_FILE
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        records = process_batch(models, batch, settings)
        with path.open("a") as fh:
            for rec in records:
                fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        if on_progress:
            on_progress(len(batch), sum(record_tokens(r) for r in records))
    return read_records(out_dir)


# ------------------------------------------------------------------------------------------------
# From records to the summary
# ------------------------------------------------------------------------------------------------


def request_chains(records: Sequence[dict[str, Any]], method: str, which: str, verification: str,
                   k_max: int, temp_indices: Sequence[int]) -> list[RequestChain]:
    """Per-request chains for a method ('draft_model'/'ngram'), pair ('deployed'/'reference') and the
    evaluated temperatures ``temp_indices`` (all served by one context per request)."""
    chains = []
    wanted = list(temp_indices)
    for rec in records:
        entry = next((c for c in rec["contexts"] if set(wanted) <= set(c["temps"])), None)
        if entry is None or not entry["continuation"]:
            continue
        rows = [entry["temps"].index(j) for j in wanted]
        n = len(entry["continuation"])
        matched = budget = None
        prefill_plain = False
        if method == "draft_model":
            pair = entry["pairs"].get(which)
            if pair is None:
                continue
            betas = np.asarray(pair["lossless" if verification == "lossless" else "argmax"], dtype=np.float64)[rows]
            chain, lengths = chain_from_positions(betas, k_max)
        else:
            ng = entry["ngram"].get(which)
            if ng is None:
                continue
            lengths = np.asarray(ng["lengths"], dtype=np.int64)
            chain = np.zeros((len(wanted), n, k_max))
            for t, values in ng["chain"].items():
                arr = np.asarray(values, dtype=np.float64)[rows]
                chain[:, int(t), : arr.shape[1]] = arr
            if ng.get("matched") is not None:
                matched = np.asarray(ng["matched"], dtype=np.int64)
            budget = ng.get("budget")  # records written before the vLLM rules (their last step was plain)
            prefill_plain = bool(ng.get("prefill_plain", False))
        chains.append(RequestChain(rec["id"], rec["category"], chain, lengths, matched, budget, prefill_plain))
    return chains


def request_counters(records: Sequence[dict[str, Any]], method: str, verification: str, settings: EstimateSettings,
                     temperature: float, k: int, which: str = "deployed") -> dict[str, tuple[float, float]]:
    """Expected (accepted, drafted) per request id at one temperature and k: the estimate's side of a
    per-request comparison with a measurement (its pooled ratio is ``acceptance_rate`` at that k)."""
    j = list(settings.temperatures).index(temperature)
    band = next(indices for indices in context_bands(settings.temperatures, settings.context_temperatures).values()
                if j in indices)
    main_v = verification if method == "draft_model" else "argmax_draft"
    out = {}
    for rc in request_chains(records, method, which, main_v, settings.k_max, band):
        c = replay_steps(rc.chain, rc.lengths, k, rc.matched, rc.budget, rc.prefill_plain)
        jj = band.index(j)
        out[rc.request_id] = (float(c.accepted[jj]), float(c.draft_tokens[jj]))
    return out


def _nan_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 5)


def _conditional(unconditional: Sequence[float]) -> list[float]:
    """alpha_i = a_i / a_{i-1} (0 once a position is never reached), clipped into [0, 1]."""
    out, prev = [], 1.0
    for a in unconditional:
        out.append(round(min(max(float(a) / prev, 0.0), 1.0), 5) if prev > 0 else 0.0)
        prev = float(a)
    return out


def method_estimate(records: Sequence[dict[str, Any]], method: str, verification: str, settings: EstimateSettings,
                    cost_ratio: float, cost_ratio_source: str, draft_name: str | None,
                    fixed_k: int | None, which: str = "deployed") -> MethodEstimate | None:
    temps = settings.temperatures
    k_max = settings.k_max
    main_v = verification if method == "draft_model" else "argmax_draft"
    # per band of temperatures served by one context temperature: summaries indexed by local temperature
    where: dict[int, tuple[Any, Any, int, float, Any]] = {}
    for _, indices in context_bands(temps, settings.context_temperatures).items():
        chains = request_chains(records, method, which, main_v, k_max, indices)
        if not chains:
            continue
        groups = summarize(chains, k_max, len(indices))
        argmax_groups = groups if main_v == "argmax_draft" else summarize(
            request_chains(records, method, which, "argmax_draft", k_max, indices), k_max, len(indices))
        for jj, j in enumerate(indices):
            flat = np.concatenate([rc.chain[jj, :, 0] for rc in chains])
            where[j] = (groups, argmax_groups, jj, float(flat.mean()) if flat.size else float("nan"),
                        groups["all"].heterogeneity()[jj])
    if len(where) != len(temps):
        return None
    entries = []
    for j0, temperature in enumerate(temps):
        groups, argmax_groups, j, pos_mean, het_j = where[j0]
        allg, allg_arg = groups["all"], argmax_groups["all"]
        speedups = [float(speedup_batch1(allg.counters_by_k[k - 1], cost_ratio)[j]) for k in range(1, k_max + 1)]
        rec_k = recommend_k(speedups)
        rate_k = fixed_k or max(rec_k, 1)
        top = allg.counters_by_k[k_max - 1]
        unconditional = top.per_position()[j]
        categories = []
        for name, g in groups.items():
            if name == "all":
                continue
            g_top = g.counters_by_k[k_max - 1]
            categories.append(CategoryEstimate(
                conditional_acceptance=_conditional(g_top.per_position()[j]),
                match_probability=round(float(g_top.match_probability()[j]), 5),
                heterogeneity=round(float(g.heterogeneity()[j]), 4),
                category=name, num_requests=g.num_requests,
                acceptance_rate=_nan_none(g.counters_by_k[rate_k - 1].acceptance_rate()[j]),
                acceptance_rate_p10=_nan_none(g.rate_percentiles(rate_k, 10)[j]),
                acceptance_rate_p50=_nan_none(g.rate_percentiles(rate_k, 50)[j]),
                acceptance_rate_p90=_nan_none(g.rate_percentiles(rate_k, 90)[j]),
                expected_tokens_per_step=[round(float(g.counters_by_k[k - 1].tokens_per_step()[j]), 4)
                                          for k in range(1, k_max + 1)]))
        entries.append(TemperatureEstimate(
            temperature=temperature,
            acceptance_rate=_nan_none(allg.counters_by_k[rate_k - 1].acceptance_rate()[j]),
            acceptance_rate_k=rate_k,
            acceptance_rate_argmax_draft=_nan_none(allg_arg.counters_by_k[rate_k - 1].acceptance_rate()[j]),
            acceptance_rate_p10=_nan_none(allg.rate_percentiles(rate_k, 10)[j]),
            acceptance_rate_p50=_nan_none(allg.rate_percentiles(rate_k, 50)[j]),
            acceptance_rate_p90=_nan_none(allg.rate_percentiles(rate_k, 90)[j]),
            acceptance_rate_by_k=[_nan_none(allg.counters_by_k[k - 1].acceptance_rate()[j]) for k in range(1, k_max + 1)],
            expected_tokens_per_step=[round(float(allg.counters_by_k[k - 1].tokens_per_step()[j]), 4)
                                      for k in range(1, k_max + 1)],
            expected_tokens_per_step_argmax_draft=[round(float(allg_arg.counters_by_k[k - 1].tokens_per_step()[j]), 4)
                                                   for k in range(1, k_max + 1)],
            per_position_acceptance=[round(float(a), 5) for a in unconditional],
            conditional_acceptance=_conditional(unconditional),
            mean_position_acceptance=round(pos_mean, 5),
            match_probability=round(float(top.match_probability()[j]), 5),
            heterogeneity=round(float(het_j), 4),
            speedup_batch1_by_k=[round(s, 4) for s in speedups],
            recommended_k=rec_k,
            categories=categories,
        ))
    return MethodEstimate(method=method, verification=main_v, draft=draft_name if method == "draft_model" else None,
                          cost_ratio=cost_ratio, cost_ratio_source=cost_ratio_source, temperatures=entries)


def quantization_estimates(records: Sequence[dict[str, Any]], settings: EstimateSettings, verification: str,
                           deployed: Sequence[MethodEstimate], what: str) -> list[QuantizationEstimate]:
    out = []
    for est in deployed:
        ref = method_estimate(records, est.method, verification, settings, est.cost_ratio, est.cost_ratio_source,
                              est.draft, None, which="reference")
        if ref is None:
            continue
        for dep_t, ref_t in zip(est.temperatures, ref.temperatures):
            k = dep_t.acceptance_rate_k
            a_ref = ref_t.acceptance_rate_by_k[k - 1]
            a_dep = dep_t.acceptance_rate_by_k[k - 1]
            drop = None if a_ref is None or a_dep is None else round(a_ref - a_dep, 5)
            out.append(QuantizationEstimate(method=est.method, temperature=dep_t.temperature, quantized=what,
                                            acceptance_rate_reference=a_ref, acceptance_rate_quantized=a_dep,
                                            drop=drop, within_five_points=None if drop is None else abs(drop) <= 0.05))
    return out

