"""Turn a model name the user typed into a :class:`ModelSpec`.

Order: an existing local path (HF model directory or ``config.json``), then the bundled catalog
(ids, variants, quantised checkpoint names), then the Hugging Face hub when ``huggingface_hub`` is
installed and the hub answers.
"""

from __future__ import annotations

from pathlib import Path

from specwise.catalog.models import get_model
from specwise.errors import UserError
from specwise.schemas.model import ModelSpec, Quantization


def load_model_spec(name: str) -> tuple[ModelSpec, Quantization | None]:
    """Spec for ``name`` and the quantisation its name or config implies (None: unquantised)."""
    try:
        path = Path(name).expanduser()
        is_path = path.exists()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte, is no path
        is_path = False
    if is_path:
        from specwise.catalog.hf_config import spec_from_path

        return spec_from_path(path)
    try:
        return get_model(name)
    except UserError as catalog_error:
        if "/" not in name or name.count("/") != 1:
            raise
        from specwise.catalog.hf_config import spec_from_hub

        return spec_from_hub(name, catalog_error)
