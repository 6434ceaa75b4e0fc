"""A scripted tour of the FastAPI example: every kit at work, over real HTTP.

    python examples/fastapi_app/tour.py            # run the tour, exit 0 if every step passed
    python examples/fastapi_app/tour.py --serve    # then keep both servers running (Ctrl-C)

It starts the development OIDC provider (dev_oidc.py) and the app under uvicorn on free
loopback ports, on embedded defaults: SQLite in a temporary folder, thread jobs, an
in-process cache, local files, the console mailer and the userspace packet shield. Then
it walks through the app as a client would and prints one line per step saying what
each kit did. A failed step stops the tour with a message and exit status 1.

The tour plays three clients from one machine: Ann (the admin), a runaway script with an
API key, and an address the admin blocks. The app trusts loopback as a proxy here
(TRUSTED_PROXIES=127.0.0.1), so the tour tells them apart with X-Forwarded-For.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import httpx
    import uvicorn  # noqa: F401 - the app's server, started as a process
    from flask import Flask  # noqa: F401 - the dev OIDC provider's framework
except ImportError as missing:
    sys.exit(
        f"The tour needs the example's requirements ({missing.name} is missing): "
        "pip install -r examples/fastapi_app/requirements.txt, or run nox -s demo"
    )

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_servers import ServerError, Servers, embedded_env

__all__ = ["Tour", "TourFailed", "main"]

ANN = "ann@acme.example"
CY = "cy@globex.example"
ANN_ADDRESS = "192.0.2.10"  # Ann's laptop
SCRIPT_ADDRESS = "198.51.100.7"  # a script that loops on the API
BLOCKED_NETWORK = "203.0.113.0/24"
WAIT = 20.0  # seconds a background job may take before the tour gives up


class TourFailed(Exception):
    """A step did not see what it expected; the message says what."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise TourFailed(message)


def _status(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise TourFailed(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {' or '.join(map(str, expected))}: "
            f"{response.text[:500]}"
        )
    return response


@dataclass
class Tour:
    """The steps, in order; each returns ``(kit, what happened)``."""

    servers: Servers
    client: httpx.Client = field(init=False)
    token: str = ""
    refresh_token: str = ""
    user: dict[str, Any] = field(default_factory=dict)
    project_ids: list[str] = field(default_factory=list)
    report_request_id: str = ""

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.servers.app_url,
            headers={"X-Forwarded-For": ANN_ADDRESS},
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def steps(self) -> list[Callable[[], tuple[str, str]]]:
        return [
            self.sign_in,
            self.welcome_mail,
            self.create_projects,
            self.keyset_pages,
            self.tenant_isolation,
            self.report_job,
            self.request_id_in_job_log,
            self.cached_read,
            self.refresh_rotation,
            self.rate_limit_and_ban,
            self.admin_block,
            self.readiness,
        ]

    def run(self, emit: Callable[[str], None] = print) -> int:
        steps = self.steps()
        for number, step in enumerate(steps, 1):
            try:
                kit, text = step()
                self.servers.check()
            except TourFailed as exc:
                raise TourFailed(f"step {number} ({step.__name__}): {exc}") from exc
            except Exception as exc:
                raise TourFailed(f"step {number} ({step.__name__}): {exc!r}") from exc
            emit(f"{number:>2}. {kit:<22} {text}")
        return len(steps)

    # -- sign-in ----------------------------------------------------------------------

    def sign_in_as(self, email: str | None = None) -> dict[str, Any]:
        """The browser's dance, with a cookie jar: /auth/dev/login redirects to the
        provider, which answers with a code (auto-approved for Ann; for anyone else the
        tour submits the provider's sign-in form), back to /auth/dev/callback."""
        with httpx.Client(
            base_url=self.servers.app_url,
            headers={"X-Forwarded-For": ANN_ADDRESS},
            follow_redirects=True,
            timeout=30,
        ) as browser:
            if email is None:
                answer = _status(browser.get("/auth/dev/login"), 200)
            else:
                start = _status(browser.get("/auth/dev/login", follow_redirects=False), 302)
                authorize = start.headers["location"]
                expect(authorize.startswith(self.servers.issuer), f"login went to {authorize}")
                answer = _status(browser.post(authorize, data={"user": email}), 200)
        body: dict[str, Any] = answer.json()
        return body

    def sign_in(self) -> tuple[str, str]:
        body = self.sign_in_as()
        self.token, self.refresh_token = body["access_token"], body["refresh_token"]
        self.user = body["user"]
        expect(self.user["email"] == ANN, f"signed in as {self.user['email']}, not {ANN}")
        me = _status(self.client.get("/api/me", headers=self.auth), 200).json()
        return (
            "kit-auth",
            f"signed in as {self.user['email']} through the dev OIDC provider "
            "(authorization code + PKCE, state in a signed cookie); got a JWT for tenant "
            f"{me['tenant_id']}, role {', '.join(me['roles'])}, {len(me['scopes'])} scopes "
            f"(expires in {body['expires_in']} s) and a refresh token",
        )

    def welcome_mail(self) -> tuple[str, str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            output = self.servers.output()
            if f"To: {ANN}" in output and "Subject: Welcome to the kit demo" in output:
                break
            time.sleep(0.1)
        else:
            raise TourFailed(f"no welcome mail to {ANN} was printed within {WAIT:.0f} s")
        where = "the RQ worker" if len(self.servers.processes) > 1 else "the app's thread pool"
        return (
            "kit-jobs + kit-mail",
            f"first sign-in enqueued send_welcome_mail; {where} ran it and the console "
            f"mailer printed 'Subject: Welcome to the kit demo' to {ANN}",
        )

    # -- projects ---------------------------------------------------------------------

    def create_projects(self) -> tuple[str, str]:
        for name in ("Apollo", "Gemini", "Mercury"):
            answer = _status(
                self.client.post("/api/projects", json={"name": name}, headers=self.auth), 201
            )
            self.project_ids.append(answer.json()["id"])
        bad = self.client.post("/api/projects", json={"name": ""}, headers=self.auth)
        expect(bad.status_code == 422, f"an empty name answered {bad.status_code}")
        expect(
            bad.headers["content-type"].startswith("application/problem+json"),
            "a validation error is not problem+json",
        )
        return (
            "kit-db",
            f"created 3 projects in tenant {self.user['tenant_id']} (UUIDv7 ids, tenant "
            "stamped by the session); an empty name is a 422 problem+json",
        )

    def keyset_pages(self) -> tuple[str, str]:
        first = _status(
            self.client.get("/api/projects", params={"limit": 2}, headers=self.auth), 200
        ).json()
        expect(len(first["items"]) == 2 and first["has_next"], f"page 1 was {first}")
        second = _status(
            self.client.get(
                "/api/projects",
                params={"limit": 2, "after": first["next_cursor"]},
                headers=self.auth,
            ),
            200,
        ).json()
        names = [p["name"] for p in first["items"] + second["items"][:1]]
        expect(names == ["Mercury", "Gemini", "Apollo"], f"pages gave {names}")
        forged = first["next_cursor"][:-2] + (
            "AA" if not first["next_cursor"].endswith("AA") else "BB"
        )
        tampered = self.client.get("/api/projects", params={"after": forged}, headers=self.auth)
        expect(tampered.status_code == 400, f"a tampered cursor answered {tampered.status_code}")
        return (
            "kit-db",
            f"keyset pages, newest first: {names[:2]} then via next_cursor {names[2:]}; "
            "a tampered cursor is a 400",
        )

    def tenant_isolation(self) -> tuple[str, str]:
        other = self.sign_in_as(CY)
        headers = {"Authorization": f"Bearer {other['access_token']}"}
        listed = _status(self.client.get("/api/projects", headers=headers), 200).json()
        expect(listed["items"] == [], f"{CY} sees {listed['items']}")
        peek = self.client.get(f"/api/projects/{self.project_ids[0]}", headers=headers)
        expect(peek.status_code == 404, f"{CY} reading Ann's project got {peek.status_code}")
        return (
            "kit-db",
            f"{CY} (signed in through the provider's form) is in tenant "
            f"{other['user']['tenant_id']}: sees no projects of acme.example, and reading "
            "one by id is a 404",
        )

    # -- background work ---------------------------------------------------------------

    def report_job(self) -> tuple[str, str]:
        answer = _status(self.client.post("/api/reports", headers=self.auth), 202)
        self.report_request_id = answer.headers["x-request-id"]
        report = answer.json()
        deadline, pause = time.monotonic() + WAIT, 0.05
        while report["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            report = _status(
                self.client.get(f"/api/reports/{report['id']}", headers=self.auth), 200
            ).json()
        expect(report["status"] == "ready", f"the report is {report['status']} after {WAIT} s")
        expect(report["rows"] == 3, f"the report has {report['rows']} rows, not 3")
        download = _status(self.client.get(report["download_url"]), 200)
        expect(download.text.startswith("id,name,created_at"), "the CSV has no header row")
        key = f"reports/{self.user['tenant_id']}/{report['id']}.csv"
        on_disk = self.servers.var_dir / "files" / key
        expect(on_disk.is_file(), f"{on_disk} is not in storage")
        forged = report["download_url"].replace("sig=", "sig=x")
        refused = self.client.get(forged)
        expect(refused.status_code == 403, f"a forged link answered {refused.status_code}")
        return (
            "kit-jobs + kit-storage",
            f"report job {report['job_id'][:8]}… wrote {key} ({report['size']} bytes, "
            f"{report['rows']} rows) into local storage; downloaded it through a signed "
            "5-minute link (a forged signature is a 403)",
        )

    def request_id_in_job_log(self) -> tuple[str, str]:
        lines = [
            line
            for line in self.servers.log_lines()
            if line.get("event") == "report_built"
            and line.get("request_id") == self.report_request_id
        ]
        expect(bool(lines), f"no report_built log line carries request id {self.report_request_id}")
        line = lines[0]
        return (
            "logging",
            f"POST /api/reports had X-Request-ID {self.report_request_id[:12]}…; the job's "
            f"JSON log line 'report_built' carries it, with job_id {line['job_id'][:8]}… "
            f"and tenant {line['tenant']}",
        )

    # -- cache --------------------------------------------------------------------------

    def cached_read(self) -> tuple[str, str]:
        path = f"/api/projects/{self.project_ids[1]}"
        first = _status(self.client.get(path, headers=self.auth), 200)
        second = _status(self.client.get(path, headers=self.auth), 200)
        expect("age" not in first.headers, "the first read was already cached")
        expect("age" in second.headers, "the second read was not served from the cache")
        expect(first.headers["etag"] == second.headers["etag"], "the ETag changed")
        again = self.client.get(
            path, headers={**self.auth, "If-None-Match": second.headers["etag"]}
        )
        expect(again.status_code == 304, f"If-None-Match answered {again.status_code}")
        return (
            "kit-cache",
            f"GET {path[:22]}… twice: computed, then served from the cache (Age: "
            f"{second.headers['age']}, {second.headers['cache-control']}); "
            f'If-None-Match {second.headers["etag"][:10]}…" → 304 Not Modified',
        )

    # -- tokens, limits, shield ----------------------------------------------------------

    def refresh_rotation(self) -> tuple[str, str]:
        rotated = _status(
            self.client.post("/auth/refresh", json={"refresh_token": self.refresh_token}), 200
        ).json()
        replay = self.client.post("/auth/refresh", json={"refresh_token": self.refresh_token})
        expect(replay.status_code == 401, f"a replayed refresh token answered {replay.status_code}")
        revoked = self.client.get(
            "/api/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
        )
        expect(revoked.status_code == 401, "the family survived a refresh-token replay")
        self.token, self.refresh_token = self.sign_in_as()["access_token"], ""
        return (
            "kit-auth",
            "refresh rotated the tokens; replaying the spent refresh token is a 401 and "
            "signs the whole family out (signed in again)",
        )

    def rate_limit_and_ban(self) -> tuple[str, str]:
        issued = _status(
            self.client.post(
                "/api/keys",
                json={"name": "nightly sync", "scopes": ["projects:read"]},
                headers=self.auth,
            ),
            201,
        ).json()
        script = {"Authorization": f"Bearer {issued['token']}", "X-Forwarded-For": SCRIPT_ADDRESS}
        write = self.client.post("/api/projects", json={"name": "x"}, headers=script)
        expect(write.status_code == 403, f"a read-only key could write ({write.status_code})")
        count, answer = 1, write
        while answer.status_code != 429 and count < 1000:
            answer = self.client.get("/api/projects", headers=script)
            count += 1
        expect(answer.status_code == 429, f"no 429 after {count} requests")
        retry_after = answer.headers.get("retry-after")
        expect(retry_after is not None, "the 429 has no Retry-After")
        banned = self.client.get("/api/projects", headers=script)
        expect(banned.status_code == 403, f"after the 429 the script got {banned.status_code}")
        problem = banned.json()
        expect(problem["type"].endswith("/client-blocked"), f"403 of type {problem['type']}")
        return (
            "kit-auth + netcore",
            f"a read-only API key ({issued['key_id']}, stored hashed via kit-db) from "
            f"{SCRIPT_ADDRESS}: write refused (403 insufficient scope); request {count} "
            f"was a 429 (Retry-After: {retry_after}); on_exceeded banned the address, so "
            "the next one is a 403 client-blocked from the shield middleware",
        )

    def admin_block(self) -> tuple[str, str]:
        typo = self.client.post(
            "/api/admin/blocks", json={"address": "203.0.113.1/24"}, headers=self.auth
        )
        expect(typo.status_code == 422, f"a CIDR with host bits answered {typo.status_code}")
        expect("203.0.113.0/24" in typo.json()["detail"], f"the 422 says {typo.text}")
        rule = _status(
            self.client.post(
                "/api/admin/blocks",
                json={"address": BLOCKED_NETWORK, "ttl": 600},
                headers=self.auth,
            ),
            201,
        ).json()
        blocked = self.client.get("/health/live", headers={"X-Forwarded-For": "203.0.113.9"})
        expect(blocked.status_code == 403, f"a blocked address got {blocked.status_code}")
        bob = self.sign_in_as("bob@acme.example")
        refused = self.client.post(
            "/api/admin/blocks",
            json={"address": "192.0.2.99"},
            headers={"Authorization": f"Bearer {bob['access_token']}"},
        )
        expect(refused.status_code == 403, f"an editor could block ({refused.status_code})")
        return (
            "kit-netcore",
            f"admin POST /api/admin/blocks {rule['network']} (ttl 600 s) → 201, then "
            "203.0.113.9 gets a 403 before routing; a typo (203.0.113.1/24) is a 422 that "
            "suggests 203.0.113.0/24; bob (editor) is refused with a 403",
        )

    def readiness(self) -> tuple[str, str]:
        ready = _status(self.client.get("/health/ready"), 200).json()
        expect(ready["status"] == "ok", f"/health/ready says {ready}")
        parts = [f"{name} {c['status']} ({c['backend']})" for name, c in ready["checks"].items()]
        return ("health", "/health/ready 200: " + ", ".join(parts))


@contextmanager
def _run_dir(keep: bool) -> Iterator[Path]:
    if keep:
        yield Path(tempfile.mkdtemp(prefix="kit-demo-"))
        return
    with tempfile.TemporaryDirectory(prefix="kit-demo-") as name:
        yield Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="keep the servers running after")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    with _run_dir(args.keep or args.serve) as var_dir:
        print(
            "kit demo: dev OIDC provider + FastAPI app on embedded defaults (SQLite, thread "
            "jobs, memory cache, local files, console mail, userspace shield) in "
            f"{var_dir}",
            flush=True,
        )
        try:
            with Servers.running(embedded_env(var_dir), var_dir=var_dir) as servers:
                print(f"    app {servers.app_url}   provider {servers.issuer}", flush=True)
                tour = Tour(servers)
                try:
                    count = tour.run(lambda line: print(line, flush=True))
                except TourFailed as exc:
                    print(f"\nTOUR FAILED at {exc}", file=sys.stderr)
                    print(f"\nThe servers' last log lines:\n{servers.log_tail()}", file=sys.stderr)
                    return 1
                finally:
                    tour.close()
                print(f"Tour complete: {count} steps passed.", flush=True)
                if args.serve:
                    _serve(servers)
        except ServerError as exc:
            print(f"\nTOUR FAILED: a server did not run: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
    return 0


def _serve(servers: Servers) -> None:
    print(
        f"\nServing until Ctrl-C:\n"
        f"  API docs   {servers.app_url}/docs\n"
        f"  sign in    {servers.app_url}/auth/dev/login  (auto-approves {ANN})\n"
        f"  readiness  {servers.app_url}/health/ready\n"
        f"  provider   {servers.issuer}\n"
        f"  files      {servers.var_dir}  (app.log: JSON logs, app.out: mails)",
        flush=True,
    )
    try:
        while True:
            servers.check()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)


if __name__ == "__main__":
    sys.exit(main())
