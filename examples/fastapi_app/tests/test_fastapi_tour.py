"""The tour's whole flow, step by step, on each backend set."""

from __future__ import annotations

from demo_servers import Servers
from tour import Tour


def test_the_tour_passes(servers: Servers) -> None:
    tour = Tour(servers)
    lines: list[str] = []
    try:
        count = tour.run(lines.append)
    finally:
        tour.close()
    assert count == len(lines) == 12
    kits = " ".join(lines)
    for kit in ("kit-auth", "kit-db", "kit-jobs", "kit-mail", "kit-storage", "kit-cache"):
        assert kit in kits
    assert "kit-netcore" in kits
    if len(servers.processes) > 1:  # services: the RQ worker ran the jobs
        assert "the RQ worker ran it" in lines[1]
        worker_events = {line.get("event") for line in servers.log_lines("worker")}
        assert {"welcome_mail_sent", "report_built"} <= worker_events
