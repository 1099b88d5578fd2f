"""``specwise demo``: plan, simulate, serve-sim + bench, decide and report on built-in defaults (no GPU)."""

from specwise.demo.pipeline import DemoResult, DemoSettings, run_demo

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
