"""Tests of the operator's side: docker-compose.yml, deploy/ (Prometheus, Grafana, Dagster, Helm, Spark)."""
