"""Prometheus metrics and a health endpoint for the simulator.

The send loop updates plain Python counters (:class:`SimStats`); a custom collector turns them into
Prometheus samples only when scraped. Updating ``prometheus_client`` metrics per record would cost more
than producing the record.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

INJECTED_KINDS: tuple[str, ...] = ("anomaly", "duplicate", "malformed", "late")


class SimStats:
    """Counters written by the send loop (one thread) and read by scrapes (dict copies are atomic)."""

    def __init__(self) -> None:
        self.sent: Counter[tuple[str, str]] = Counter()  # (device_type, status) -> records
        self.by_kind: Counter[str] = Counter()
        self.bytes_sent = 0
        self.delivery_errors = 0
        self.error_samples: list[str] = []  # the first few delivery errors, for the final report
        self.active_devices = 0
        self.current_rate_eps = 0.0
        self.started_at = time.time()
        self.state = "starting"  # starting -> running -> stopping -> stopped | failed

    @property
    def records_sent(self) -> int:
        return sum(self.sent.values())

    def record_error(self, message: str) -> None:
        self.delivery_errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(message)


class SimCollector(Collector):
    """Exposes :class:`SimStats` under the metric names fixed for the ops dashboards."""

    def __init__(self, stats: SimStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        sent = CounterMetricFamily(
            "iot_sim_events_sent", "Records handed to the Kafka producer.", labels=["device_type", "status"]
        )
        for (device_type, status), n in sorted(dict(s.sent).items()):
            sent.add_metric([device_type, status], n)
        yield sent
        yield CounterMetricFamily(
            "iot_sim_delivery_errors", "Records Kafka failed to deliver.", value=s.delivery_errors
        )
        yield CounterMetricFamily(
            "iot_sim_bytes_sent", "Record value bytes handed to Kafka.", value=s.bytes_sent
        )
        yield GaugeMetricFamily(
            "iot_sim_active_devices", "Devices currently simulated.", value=s.active_devices
        )
        yield GaugeMetricFamily(
            "iot_sim_current_rate_eps", "Records per second over the last second.", value=s.current_rate_eps
        )
        injected = CounterMetricFamily("iot_sim_injected", "Records with an injected fault.", labels=["kind"])
        by_kind = dict(s.by_kind)
        for kind in INJECTED_KINDS:
            injected.add_metric([kind], by_kind.get(kind, 0))
        yield injected


def health(stats: SimStats) -> tuple[int, dict[str, Any]]:
    healthy = stats.state in ("starting", "running")
    body = {
        "status": "ok" if healthy else stats.state,
        "state": stats.state,
        "records_sent": stats.records_sent,
        "delivery_errors": stats.delivery_errors,
        "uptime_seconds": round(time.time() - stats.started_at, 3),
    }
    return (200 if healthy else 503), body


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) on a daemon thread."""

    def __init__(self, stats: SimStats, host: str = "127.0.0.1", port: int = 9108) -> None:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(SimCollector(stats))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry)
                elif path == "/healthz":
                    status, payload = health(stats)
                    ctype, body = "application/json", json.dumps(payload).encode()
                else:
                    status, ctype, body = 404, "text/plain", b"not found: try /metrics or /healthz\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
                pass

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(
                f"cannot serve simulator metrics on {host}:{port} ({exc.strerror}); choose another port "
                "with --metrics-port or IOT_SIM_METRICS_PORT"
            ) from exc
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never started
            self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
