"""``specwise catalog``: list the bundled models and GPUs (parameter counts are computed)."""

from __future__ import annotations

from typing import Optional

import typer


def catalog(
    gpus: bool = typer.Option(False, "--gpus", help="List GPUs instead of models."),
    calibrations: bool = typer.Option(False, "--calibrations", help="List the named step-time calibrations "
                                      "(measured constants simulate uses; see README 'Calibrations')."),
    family: Optional[str] = typer.Option(None, "--family", help="Only models whose family contains this text."),
    json_out: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> None:
    """Bundled model and GPU specs (models: computed params, KV bytes per token in bf16)."""
    from rich.table import Table

    from specwise.catalog.models import list_gpus, list_models
    from specwise.cli.output import console, emit_json

    if calibrations:
        from specwise.perf.calibration import load_calibrations

        cals = load_calibrations()
        if json_out:
            emit_json([c.model_dump(mode="json") for c in cals])
            return
        t = Table(title="Calibrations (measured step-time constants; simulate picks one matching GPU, vLLM version "
                        "and model shapes)")
        for col in ("name", "GPU", "vLLM", "target shape", "draft shape", "engine modes", "host",
                    "host classes (--calibration-host)"):
            t.add_column(col)
        for c in cals:
            t.add_row(c.name, c.gpu, f"{c.vllm_since} - <{c.vllm_until or 'any'}", c.target, c.draft or "-",
                      ", ".join(c.modes), c.host, ", ".join(c.host_class_names()))
        console.print(t)
        return
    if gpus:
        items = list_gpus()
        if json_out:
            emit_json([g.model_dump(mode="json") for g in items])
            return
        t = Table(title="GPUs (dense peaks; memory as the driver reports it, GiB = 2^30 B)")
        for col in ("name", "aliases", "memory GiB", "HBM TB/s", "BF16 TFLOP/s", "FP8 TFLOP/s"):
            t.add_column(col)
        for g in items:
            t.add_row(g.name, ", ".join(g.aliases), f"{g.memory_gib:.1f}", f"{g.hbm_bandwidth_tbs:g}",
                      f"{g.bf16_tflops:g}", "-" if g.fp8_tflops is None else f"{g.fp8_tflops:g}")
        console.print(t)
        return
    models = [m for m in list_models() if family is None or family.lower() in m.family.lower()]
    if json_out:
        rows = []
        for m in models:
            pc = m.param_counts()
            rows.append({**m.model_dump(mode="json"), "params_total": pc.total, "params_active": pc.active,
                         "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0)})
        emit_json(rows)
        return
    t = Table(title="Models (params computed from the architecture; KV bytes/token in bf16, all layers)")
    for col in ("id", "kind", "family", "params B", "active B", "layers", "hidden", "heads/kv", "KV B/token", "vocab", "max pos"):
        t.add_column(col)
    for m in models:
        pc = m.param_counts()
        t.add_row(m.id, m.kind if m.kind == "model" else f"{m.kind} for {', '.join(m.speculator_for)}", m.family,
                  f"{pc.total / 1e9:.2f}", f"{pc.active / 1e9:.2f}", str(m.num_layers), str(m.hidden_size),
                  f"{m.num_heads}/{m.num_kv_heads}", f"{m.kv_bytes_per_token(2.0):,.0f}", str(m.vocab_size),
                  str(m.max_position_embeddings))
    console.print(t)
