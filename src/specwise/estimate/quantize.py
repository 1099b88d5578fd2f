"""Weight fake-quantisation: quantise then dequantise a model's linear weights in place.

This reproduces the *numerics* of weight-only quantised checkpoints so their acceptance can be estimated
with any backend (the arithmetic stays in the model's dtype, so it does not reproduce their speed):

* ``int8``: symmetric, one scale per output channel, ``q = clamp(round(w / s), -127, 127)``,
  ``s = max|w_row| / 127`` (the w8a16 / "int8 weight-only" scheme);
* ``int4``: asymmetric with a zero point, one (scale, zero) per group of ``group_size`` input columns
  (128 by default, the common GPTQ/AWQ group size), ``q = clamp(round(w / s) + z, 0, 15)``,
  ``s = (max - min) / 15``, ``z = round(-min / s)``.

Every ``torch.nn.Linear`` inside the transformer blocks is quantised; the token embedding and ``lm_head``
stay in full precision, as GPTQ/AWQ checkpoints usually keep them.
"""

from __future__ import annotations

from typing import Any

from specwise.errors import UserError

SCHEMES = ("int8", "int4")


def fake_quantize_weight(weight: Any, scheme: str, group_size: int = 128) -> Any:
    """Quantise-dequantise one weight matrix [out, in]; returns a new tensor of the same dtype."""
    import torch

    w = weight.detach().float()
    if scheme == "int8":
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        q = torch.clamp(torch.round(w / scale), -127, 127)
        return (q * scale).to(weight.dtype)
    if scheme == "int4":
        out_features, in_features = w.shape
        g = group_size if group_size > 0 and in_features % group_size == 0 else in_features
        grouped = w.reshape(out_features, in_features // g, g)
        w_min = grouped.amin(dim=2, keepdim=True)
        w_max = grouped.amax(dim=2, keepdim=True)
        scale = ((w_max - w_min) / 15.0).clamp(min=1e-12)
        zero = torch.round(-w_min / scale)
        q = torch.clamp(torch.round(grouped / scale) + zero, 0, 15)
        return ((q - zero) * scale).reshape(out_features, in_features).to(weight.dtype)
    raise UserError(f"unknown quantisation scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


def quantize_model_(model: Any, scheme: str, group_size: int = 128) -> int:
    """Fake-quantise every transformer-block Linear of ``model`` in place; returns how many were changed."""
    import torch

    if scheme not in SCHEMES:
        raise UserError(f"unknown quantisation scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    changed = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and "lm_head" not in name:
                module.weight.copy_(fake_quantize_weight(module.weight, scheme, group_size))
                changed += 1
    return changed


def weight_bits(scheme: str | None, group_size: int = 128) -> float:
    """Effective bits per linear weight incl. fp16 scales and 4-bit zeros (as ``LINEAR_BYTES_PER_PARAM``)."""
    if scheme is None:
        return 16.0
    if scheme == "int8":
        return 8.0
    return 4.0 + 20.0 / group_size
