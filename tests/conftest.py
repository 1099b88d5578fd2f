"""Suite-wide settings: no test may reach the Hugging Face hub (CI has no route to it)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
