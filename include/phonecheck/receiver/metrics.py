"""The receiver's ``/metrics`` text (docs/receiver.md)."""

from __future__ import annotations

from collections import Counter


def render_metrics(metrics: Counter, gauges: dict[str, int] | None = None) -> str:
    """Prometheus text: request counters by endpoint and outcome, the receiver's own counters,
    and ``gauges``."""
    lines = [
        "# HELP phonecheck_receiver_requests_total Webhook deliveries by endpoint and outcome.",
        "# TYPE phonecheck_receiver_requests_total counter",
    ]
    for key, count in sorted(metrics.items(), key=str):
        if isinstance(key, tuple):
            lines.append(
                f'phonecheck_receiver_requests_total{{endpoint="{key[0]}",outcome="{key[1]}"}} {count}'
            )
    for name, help_text in (
        ("spool_replayed", "Spooled deliveries replayed into the warehouse."),
        (
            "spool_write_failures",
            "Spool (or quarantine) writes that failed: deliveries refused with 503.",
        ),
        ("quarantined", "Records (or unreadable regions) put in quarantine."),
        ("replay_failures", "Spool replay passes that failed."),
    ):
        lines.append(f"# HELP phonecheck_receiver_{name}_total {help_text}")
        lines.append(f"# TYPE phonecheck_receiver_{name}_total counter")
        lines.append(f"phonecheck_receiver_{name}_total {metrics[name]}")
    for name, value in (gauges or {}).items():
        lines.append(f"# TYPE phonecheck_receiver_{name} gauge")
        lines.append(f"phonecheck_receiver_{name} {value}")
    return "\n".join(lines) + "\n"
