"""kit-mail against the libraries a user would otherwise pick, in one process and one run.

    python packages/kit-mail/benchmarks/run.py --out kit-mail.json [--quick]

Writes ``{"package": "kit-mail", "results": [...], "info": {...}}``, the format
``tools/bench_table.py`` prints (``nox -s bench``): one row per comparison, ``kit_us`` and
``peer_us`` per message, ``ratio`` = kit time / peer time, so below 1 means kit is
faster. Both sides are timed in interleaved rounds (the order rotating each round) and the
fastest round counts. Missing a target is reported in the table, never an error; the exit
status is non-zero only when something breaks (the server does not start, a message is
lost).

The SMTP server is aiosmtpd on 127.0.0.1 in a **subprocess** (so its event loop does not
share this process's GIL with the clients being timed), plain SMTP (no TLS: a TLS
handshake per connection would only widen the gap in kit's favour). It accepts and
discards every message and counts them. Both sides build each message's MIME form with
``Message.to_email_message()`` inside the timed loop, so the rows compare the transport.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import smtplib
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kit_mail
from kit_mail._message import Message
from kit_mail.smtp import SMTPMailer

PACKAGE = "kit-mail"
HOST = "127.0.0.1"
SENDER = "bench@example.com"


@dataclass(frozen=True)
class Mode:
    name: str
    messages: int
    rounds: int


FULL = Mode("full", 100, 15)
QUICK = Mode("quick", 100, 3)


# --------------------------------------------------------------------------- the server


def serve() -> int:
    """The server subprocess: print the port, then answer ``count`` lines on stdin with
    the number of messages accepted so far; exit at end of input."""
    from aiosmtpd.controller import Controller

    class Handler:
        accepted = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Handler.accepted += 1
            return "250 OK"

    class EphemeralController(Controller):
        def _trigger_server(self) -> None:
            assert self.server is not None
            self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            super()._trigger_server()  # type: ignore[no-untyped-call]

    controller = EphemeralController(Handler(), hostname=HOST, port=0, server_hostname="bench.test")
    controller.start()
    print(controller.port, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(Handler.accepted, flush=True)
    finally:
        controller.stop()
    return 0


class Server:
    """The aiosmtpd subprocess."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the SMTP server did not start (said {line!r})")
        self.port = int(line)

    def count(self) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --------------------------------------------------------------------------- timing


@dataclass
class Contender:
    """One side: ``run()`` sends one batch and returns its wall time in seconds."""

    label: str
    run: Callable[[], float]
    samples: list[float] = field(default_factory=list)


def interleave(contenders: list[Contender], rounds: int) -> None:
    for round_no in range(rounds):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            gc.collect()
            contender.samples.append(contender.run())


def row(
    name: str,
    kit: Contender,
    peer: Contender,
    n: int,
    *,
    target: str,
    meets: Callable[[float], bool] | None,
) -> dict[str, Any]:
    kit_us = min(kit.samples) / n * 1e6
    peer_us = min(peer.samples) / n * 1e6
    ratio = kit_us / peer_us
    verdict = "info" if meets is None else ("meets target" if meets(ratio) else "misses target")
    kit_median = sorted(kit.samples)[len(kit.samples) // 2] / n * 1e6
    peer_median = sorted(peer.samples)[len(peer.samples) // 2] / n * 1e6
    return {
        "name": name,
        "kit": PACKAGE,
        "peer": peer.label,
        "kit_us": round(kit_us, 3),
        "peer_us": round(peer_us, 3),
        "ratio": round(ratio, 4),
        "target": target,
        "verdict": verdict,
        "kit_call": kit.label,
        "kit_median_us": round(kit_median, 3),
        "peer_median_us": round(peer_median, 3),
        "median_ratio": round(kit_median / peer_median, 4),
        "rounds": len(kit.samples),
        "messages_per_round": n,
        "stat": "fastest of interleaved rounds, per message",
    }


def smtp_rows(server: Server, mode: Mode) -> list[dict[str, Any]]:
    n = mode.messages
    messages = [
        Message(
            sender=SENDER,
            to=f"user{i}@example.com",
            subject=f"Benchmark message {i}",
            text=f"Hello user {i},\n\nthis is message {i}.\n",
            html=f"<p>Hello user {i},</p><p>this is message <b>{i}</b>.</p>",
        )
        for i in range(n)
    ]
    port = server.port

    def checked(fn: Callable[[], None]) -> Callable[[], float]:
        def run() -> float:
            before = server.count()
            started = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - started
            got = server.count() - before
            if got != n:
                raise RuntimeError(f"the server accepted {got} messages, expected {n}")
            return elapsed

        return run

    def kit() -> None:
        with SMTPMailer(HOST, port, security="none", local_hostname="bench.test") as mailer:
            mailer.send_many(messages)

    def per_connection() -> None:
        for m in messages:
            with smtplib.SMTP(HOST, port, local_hostname="bench.test") as s:
                s.send_message(m.to_email_message())

    def reused() -> None:
        with smtplib.SMTP(HOST, port, local_hostname="bench.test") as s:
            for m in messages:
                s.send_message(m.to_email_message())

    kit_c = Contender("SMTPMailer.send_many(100 messages), one reused connection", checked(kit))
    per_c = Contender(
        "smtplib: `with smtplib.SMTP(host, port) as s: s.send_message(msg)` per message",
        checked(per_connection),
    )
    reused_c = Contender(
        "smtplib: one smtplib.SMTP connection, send_message() for each", checked(reused)
    )
    for c in (kit_c, per_c, reused_c):  # warm-up: imports, first connections
        c.run()
    interleave([kit_c, per_c, reused_c], mode.rounds)
    return [
        row(
            f"{n} messages over SMTP (loopback, no TLS): kit send_many vs a connection per message",
            kit_c,
            per_c,
            n,
            target="< 1.0x",
            meets=lambda r: r < 1.0,
        ),
        row(
            f"{n} messages over SMTP (loopback, no TLS): kit send_many vs plain smtplib on "
            "one reused connection (kit's overhead)",
            kit_c,
            reused_c,
            n,
            target="info",
            meets=None,
        ),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    if args.out is None:
        parser.error("--out is required")
    mode = QUICK if args.quick else FULL
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    status = 0
    try:
        server = Server()
        try:
            results += smtp_rows(server, mode)
        finally:
            server.close()
    except Exception:
        traceback.print_exc()
        print("kit-mail benchmarks: error (see above); partial results written", file=sys.stderr)
        status = 1
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kit_mail": kit_mail.__version__,
        "aiosmtpd": version("aiosmtpd"),
        "server": "aiosmtpd in a subprocess on 127.0.0.1, plain SMTP",
        "mode": mode.name,
        "rounds": mode.rounds,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"package": PACKAGE, "results": results, "info": info}, indent=2) + "\n"
    )
    for r in results:
        print(
            f"{r['name']}: {r['kit_us']:.1f} us vs {r['peer_us']:.1f} us per message "
            f"({r['ratio']:.3f}x, target {r['target']}: {r['verdict']})"
        )
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
