"""The ``kit-netcore`` command: attach, steer and inspect the XDP shield of an interface.

::

    kit-netcore attach eth0 --mode generic          # load, pin the maps, attach
    kit-netcore allow eth0 192.0.2.0/24              # your own access first
    kit-netcore block eth0 203.0.113.7 --ttl 600
    kit-netcore rate-limit eth0 --pps 100 --burst 200 --ports 80,443
    kit-netcore load-list eth0 drop.txt
    kit-netcore stats eth0
    kit-netcore rules eth0 --json
    kit-netcore gc eth0                              # drop expired rules (cron)
    kit-netcore detach eth0                          # detach and unpin everything

Every command but ``attach`` works on the shield pinned under ``--pin-root`` (default
``/sys/fs/bpf/kit_netcore``) by an earlier ``attach``, from any process. Errors are one
line on stderr; the exit status is 0 on success, 2 for bad input (an invalid address,
ttl, rate, an unknown interface, a list file that does not exist) and 1 for anything else
(no shield pinned, missing privileges, a kernel call that failed).

Example::

    $ kit-netcore block eth0 10.0.0.1/8
    kit-netcore: '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8? ...
    $ echo $?
    2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kit_netcore._version import __version__
from kit_netcore.exceptions import KitNetcoreError
from kit_netcore.shield import DEFAULT_PIN_ROOT, Shield

__all__ = ["main"]

PROG = "kit-netcore"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kit-netcore`` command with ``argv`` (default ``sys.argv[1:]``); returns the
    exit status: 0 success, 2 bad input, 1 any other error.

    Example::

        >>> main(["--version"])  # doctest: +ELLIPSIS
        kit-netcore ...
        0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        _check_arguments(args)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except KitNetcoreError as exc:
        _error(str(exc))
        return 2 if isinstance(exc, ValueError) else 1
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 2
    except OSError as exc:
        _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 1


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# ---- commands -------------------------------------------------------------------------


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Shield]:
    shield = Shield.open(args.iface, pin_root=args.pin_root)
    try:
        yield shield
    finally:
        shield.close()


def _pin_dir(args: argparse.Namespace) -> str:
    return str(Path(args.pin_root) / args.iface)


def _attach(args: argparse.Namespace) -> int:
    shield = Shield.load(
        args.iface,
        pin_root=args.pin_root,
        drop_malformed=args.drop_malformed,
        track_sources=args.track_sources,
    )
    try:
        shield.attach(mode=args.mode)
        print(
            f"attached to {args.iface} in {shield.attached_mode} mode; maps pinned under "
            f"{_pin_dir(args)}"
        )
    finally:
        shield.close()
    return 0


def _detach(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        if args.keep_maps:
            shield.detach()
            print(f"detached from {args.iface}; rules and maps kept under {_pin_dir(args)}")
        else:
            shield.remove()
            print(f"detached from {args.iface}; removed {_pin_dir(args)}")
    return 0


def _add_rule(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _opened(args) as shield:
            method = shield.block if action == "block" else shield.allow
            rule = method(args.target, ttl=args.ttl)
        print(f"{action} {rule.network}, expires {_expiry(rule.expires_at)}")
        return 0

    return run


def _remove_rule(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _opened(args) as shield:
            method = shield.unblock if action == "block" else shield.disallow
            removed = method(args.target)
        verb = "unblocked" if action == "block" else "disallowed"
        print(f"{verb} {args.target}" if removed else f"no {action} rule for {args.target}")
        return 0

    return run


def _rate_limit(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        if args.clear:
            shield.clear_rate_limits()
            print(f"removed every rate limit on {args.iface}")
            return 0
        rule = shield.rate_limit(pps=args.pps, burst=args.burst, ports=args.ports)
    ports = ",".join(map(str, rule.ports)) if rule.ports else "every packet"
    print(f"rate rule {rule.id}: {rule.pps:g} pps, burst {rule.burst}, ports {ports}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        removed = shield.gc()
    print(f"removed {removed} expired {'rule' if removed == 1 else 'rules'}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        stats = shield.stats()
    packets: dict[str, int] = dict(stats.packets)
    sizes: dict[str, int] = dict(stats.bytes)
    rate_drops: dict[int, int] = dict(stats.rate_drops)
    if args.json:
        _print_json(
            {
                "packets": packets,
                "bytes": sizes,
                "rate_drops": {str(k): v for k, v in sorted(rate_drops.items())},
            }
        )
        return 0
    rows = [[reason, str(count), str(sizes.get(reason, 0))] for reason, count in packets.items()]
    _print_table(["reason", "packets", "bytes"], rows, right=(1, 2))
    for rule, drops in sorted(rate_drops.items()):
        print(f"rate rule {rule}: {drops} dropped")
    return 0


def _top(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        sources = shield.top_sources(args.n)
    if args.json:
        _print_json(
            [
                {"address": str(s.address), "packets": s.packets, "dropped": s.dropped}
                for s in sources
            ]
        )
        return 0
    if not sources:
        print(
            "no sources counted (attach with --track-sources to count packets per source)",
            file=sys.stderr,
        )
        return 0
    rows = [[str(s.address), str(s.packets), str(s.dropped)] for s in sources]
    _print_table(["address", "packets", "dropped"], rows, right=(1, 2))
    return 0


def _rules(args: argparse.Namespace) -> int:
    with _opened(args) as shield:
        rules = shield.rules()
    if args.json:
        _print_json(
            [
                {
                    "action": r.action,
                    "network": str(r.network),
                    "expires_at": r.expires_at,
                    "hits": r.hits,
                }
                for r in rules
            ]
        )
        return 0
    if not rules:
        print("no allow or block rules", file=sys.stderr)
        return 0
    rows = [[r.action, str(r.network), _expiry(r.expires_at), str(r.hits)] for r in rules]
    _print_table(["action", "network", "expires", "hits"], rows, right=(3,))
    return 0


def _load_list(args: argparse.Namespace) -> int:
    action: Literal["allow", "block"] = "allow" if args.allow else "block"
    source: Any = sys.stdin if args.path == "-" else Path(args.path)
    with _opened(args) as shield:
        count = shield.load_list(source, action=action, ttl=args.ttl)
    rules = "rule" if count == 1 else "rules"
    print(f"loaded {count} {action} {rules} from {'stdin' if args.path == '-' else args.path}")
    return 0


# ---- output -------------------------------------------------------------------------


def _expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "never"
    moment = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
    return moment.replace("+00:00", "Z")


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def _print_table(header: list[str], rows: list[list[str]], *, right: tuple[int, ...]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


# ---- arguments ------------------------------------------------------------------------


def _ports(text: str) -> list[int]:
    try:
        ports = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ports (e.g. 80,443)"
        ) from None
    if not ports:
        raise argparse.ArgumentTypeError("give at least one port (e.g. 80,443)")
    return ports


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Attach, steer and inspect the kit-netcore XDP packet shield.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("iface", metavar="IFACE", help="network interface, e.g. eth0")
    common.add_argument(
        "--pin-root",
        metavar="DIR",
        default=DEFAULT_PIN_ROOT,
        help=f"bpffs directory the shield is pinned under (default {DEFAULT_PIN_ROOT})",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    ttl = argparse.ArgumentParser(add_help=False)
    ttl.add_argument(
        "--ttl",
        type=float,
        metavar="SECONDS",
        help="expire the rule after SECONDS (default: never)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, run: Callable[[argparse.Namespace], int], text: str, *parents: Any
    ) -> Any:
        sub = commands.add_parser(name, parents=[common, *parents], help=text, description=text)
        sub.set_defaults(run=run, subparser=sub)
        return sub

    sub = command(
        "attach",
        _attach,
        "load the shield, pin its maps and attach it (atomically replacing a shield "
        "already attached)",
    )
    sub.add_argument(
        "--mode",
        choices=["auto", "native", "generic"],
        default="auto",
        help="native (driver) or generic (skb) XDP; auto tries native first (default auto)",
    )
    sub.add_argument(
        "--drop-malformed", action="store_true", help="drop malformed packets (default: pass)"
    )
    sub.add_argument(
        "--track-sources", action="store_true", help="count packets per source, for `top`"
    )
    sub = command("detach", _detach, "detach the shield and remove its pinned maps")
    sub.add_argument("--keep-maps", action="store_true", help="only detach: keep the rules pinned")
    for name, action, text in (
        ("block", "block", "drop every packet from TARGET (an address or CIDR)"),
        ("allow", "allow", "always pass TARGET (an address or CIDR), before any block or limit"),
    ):
        sub = command(name, _add_rule(action), text, ttl)
        sub.add_argument("target", metavar="TARGET")
    for name, action, text in (
        ("unblock", "block", "remove the block rule for TARGET"),
        ("disallow", "allow", "remove the allow rule for TARGET"),
    ):
        sub = command(name, _remove_rule(action), text)
        sub.add_argument("target", metavar="TARGET")
    sub = command("rate-limit", _rate_limit, "limit every source to PPS packets per second")
    group = sub.add_mutually_exclusive_group(required=True)
    group.add_argument("--pps", type=float, help="packets per second per source")
    group.add_argument("--clear", action="store_true", help="remove every rate limit")
    sub.add_argument(
        "--burst", type=int, help="packets a source may send at once (required with --pps)"
    )
    sub.add_argument(
        "--ports",
        type=_ports,
        metavar="PORTS",
        help="TCP/UDP destination ports, comma-separated (default: every packet)",
    )
    command("stats", _stats, "packets and bytes by verdict reason", as_json)
    command("gc", _gc, "remove expired rules (they already stopped matching)")
    sub = command("top", _top, "the sources that sent the most packets", as_json)
    sub.add_argument("-n", type=int, default=10, help="how many sources (default 10)")
    command("rules", _rules, "the allow and block rules", as_json)
    sub = command(
        "load-list",
        _load_list,
        "add a rule for every address or CIDR of PATH ('#' comments; '-' reads stdin)",
        ttl,
    )
    sub.add_argument("path", metavar="PATH")
    sub.add_argument("--allow", action="store_true", help="allow-list them instead of blocking")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot say: --burst goes with --pps, and --clear goes alone."""
    if args.command != "rate-limit":
        return
    sub: argparse.ArgumentParser = args.subparser
    if args.clear and (args.burst is not None or args.ports is not None):
        sub.error("--clear takes no --burst or --ports")
    if not args.clear and args.burst is None:
        sub.error("--burst is required with --pps")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
