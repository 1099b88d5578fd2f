"""Metric definitions (client side) and server-metric adapters (Prometheus scraping, deltas)."""
