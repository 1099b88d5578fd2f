"""``specwise monitor``: windowed acceptance against load from live /metrics, Prometheus rules, Grafana dashboard."""
