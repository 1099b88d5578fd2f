"""bench: A/B load tests of baseline vs speculative OpenAI-compatible endpoints (specwise bench)."""
