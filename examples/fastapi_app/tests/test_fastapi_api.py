"""The API's behaviour over HTTP, on embedded defaults and on PostgreSQL + Redis + RQ."""

from __future__ import annotations

import uuid

import httpx
from demo_servers import Servers
from fastapi_support import Api, User, eventually
from sqlalchemy import create_engine, text

PROBLEM = "application/problem+json"


def _welcome_mails(servers: Servers, email: str) -> int:
    return servers.output().count(f"To: {email}\n")


def test_first_sign_in_creates_the_user_and_mails_them_once(api: Api) -> None:
    email = api.new_person(name="Dana Newcomer")
    first = api.sign_in(email)
    assert first.body["new_user"] is True
    assert first.body["welcome_job"]
    assert first.tenant == email.rpartition("@")[2]
    assert first.body["user"]["role"] == "editor"
    eventually(lambda: _welcome_mails(api.servers, email), f"the welcome mail to {email}")

    again = api.sign_in(email)
    assert again.body["new_user"] is False
    assert again.id == first.id
    assert again.body["welcome_job"] is None
    assert _welcome_mails(api.servers, email) == 1


def test_the_request_id_follows_the_sign_in_into_its_job(api: Api) -> None:
    user = api.sign_in(api.new_person())
    jobs_process = "worker" if len(api.servers.processes) > 1 else "app"

    def job_line() -> dict[str, object] | None:
        for line in api.servers.log_lines(jobs_process):
            if line.get("event") == "welcome_mail_sent" and line.get("to") == user.email:
                return line
        return None

    line = eventually(job_line, "the welcome job's log line")
    assert line["request_id"] == user.request_id
    assert line["tenant"] == user.tenant
    assert line["user_id"] == user.id
    assert line["job_task"] == "app.jobs.send_welcome_mail"


def test_a_request_id_given_by_the_client_is_kept(api: Api) -> None:
    answer = api.http.get("/health/live", headers={"X-Request-ID": "client-chosen-id-42"})
    assert answer.headers["x-request-id"] == "client-chosen-id-42"
    bogus = api.http.get("/health/live", headers={"X-Request-ID": "no spaces allowed"})
    assert bogus.headers["x-request-id"] != "no spaces allowed"


def test_tenants_see_only_their_own_projects(api: Api) -> None:
    ada = api.sign_in(api.new_person())
    teammate = api.sign_in(api.new_person(domain=ada.tenant))
    stranger = api.sign_in(api.new_person())
    created = ada.post("/api/projects", json={"name": "Shared roadmap"})
    assert created.status_code == 201
    project = created.json()

    assert [p["id"] for p in teammate.get("/api/projects").json()["items"]] == [project["id"]]
    assert stranger.get("/api/projects").json()["items"] == []
    hidden = stranger.get(f"/api/projects/{project['id']}")
    assert hidden.status_code == 404
    assert hidden.headers["content-type"].startswith(PROBLEM)
    assert stranger.delete(f"/api/projects/{project['id']}").status_code == 404


def test_soft_delete_hides_the_project_and_drops_cached_reads(api: Api) -> None:
    user = api.sign_in(api.new_person())
    project = user.post("/api/projects", json={"name": "Temporary"}).json()
    path = f"/api/projects/{project['id']}"
    assert user.get(path).status_code == 200
    assert "age" in user.get(path).headers  # served from the cache

    assert user.delete(path).status_code == 204
    assert user.get(path).status_code == 404  # the cached copy is gone too
    assert user.get("/api/projects").json()["items"] == []


def test_cached_reads_have_etags_and_are_private(api: Api) -> None:
    user = api.sign_in(api.new_person())
    project = user.post("/api/projects", json={"name": "Cached"}).json()
    path = f"/api/projects/{project['id']}"
    first, second = user.get(path), user.get(path)
    assert "age" not in first.headers
    assert "age" in second.headers
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["cache-control"].startswith("private")
    assert first.json() == second.json() == project
    assert user.get(path, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert user.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    # Another user of the same tenant is cached separately (keyed by credentials).
    teammate = api.sign_in(api.new_person(domain=user.tenant))
    assert "age" not in teammate.get(path).headers


def test_keyset_pages_walk_forward_and_back(api: Api) -> None:
    user = api.sign_in(api.new_person())
    names = [f"p{i}" for i in range(5)]
    for name in names:
        assert user.post("/api/projects", json={"name": name}).status_code == 201

    seen, after, pages = [], None, []
    while True:
        params: dict[str, object] = {"limit": 2}
        if after:
            params["after"] = after
        page = user.get("/api/projects", params=params).json()
        pages.append(page)
        seen += [p["name"] for p in page["items"]]
        if not page["has_next"]:
            break
        after = page["next_cursor"]
    assert seen == names[::-1]
    assert len(pages) == 3

    back = user.get("/api/projects", params={"limit": 2, "before": pages[2]["previous_cursor"]})
    assert [p["name"] for p in back.json()["items"]] == ["p2", "p1"]

    tampered = user.get("/api/projects", params={"after": pages[0]["next_cursor"][:-3] + "xyz"})
    assert tampered.status_code == 400
    assert tampered.json()["type"] == "https://kit.dev/problems/invalid-cursor"
    too_big = user.get("/api/projects", params={"limit": 1000})
    assert too_big.status_code == 422
    assert too_big.headers["content-type"].startswith(PROBLEM)


def test_a_cursor_of_one_tenant_shows_nothing_of_it_to_another(api: Api) -> None:
    owner = api.sign_in(api.new_person())
    for name in ("a", "b", "c"):
        owner.post("/api/projects", json={"name": name})
    cursor = owner.get("/api/projects", params={"limit": 1}).json()["next_cursor"]
    stranger = api.sign_in(api.new_person())
    assert stranger.get("/api/projects", params={"after": cursor}).json()["items"] == []


def test_credentials_are_checked(api: Api) -> None:
    anonymous = api.http.get("/api/projects")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith(PROBLEM)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = api.http.get("/api/projects", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    bad_key = api.http.get("/api/projects", headers={"X-API-Key": "kitdemo_nope"})
    assert bad_key.status_code == 401


def test_api_keys_carry_scopes_and_can_be_revoked(api: Api) -> None:
    user = api.sign_in(api.new_person())
    issued = user.post(
        "/api/keys", json={"name": "ci", "scopes": ["projects:read"], "expires_in_days": 7}
    )
    assert issued.status_code == 201
    key = issued.json()
    assert key["token"].startswith(f"kitdemo_{key['key_id']}_")
    by_key = {"X-API-Key": key["token"]}

    assert api.http.get("/api/projects", headers=by_key).status_code == 200
    write = api.http.post("/api/projects", json={"name": "x"}, headers=by_key)
    assert write.status_code == 403
    assert "insufficient_scope" in write.headers["www-authenticate"]

    listed = user.get("/api/keys").json()
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert "token" not in listed[0]
    assert user.delete(f"/api/keys/{key['key_id']}").status_code == 204
    assert api.http.get("/api/projects", headers=by_key).status_code == 401

    more = user.post("/api/keys", json={"scopes": ["admin:everything"]})
    assert more.status_code == 400


def test_refresh_rotates_and_a_replay_signs_the_family_out(api: Api) -> None:
    user = api.sign_in(api.new_person())
    rotated = api.http.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert (
        api.http.get(
            "/api/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        ).status_code
        == 200
    )

    replay = api.http.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert replay.status_code == 401
    for token in (user.token, fresh["access_token"]):
        answer = api.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401


def test_logout_revokes_the_session(api: Api) -> None:
    user = api.sign_in(api.new_person())
    assert (
        api.http.post("/auth/logout", json={"refresh_token": user.refresh_token}).status_code == 204
    )
    assert user.get("/api/me").status_code == 401


def test_public_mail_domains_are_refused_at_sign_in(api: Api) -> None:
    email = api.new_person(domain="gmail.com")
    # The round trip by hand, to see the callback's refusal (kit-auth's EmailPolicy).
    with httpx.Client(
        base_url=api.servers.app_url,
        headers={"X-Forwarded-For": api.address},
        follow_redirects=True,
    ) as browser:
        authorize = browser.get("/auth/dev/login", follow_redirects=False).headers["location"]
        answer = browser.post(authorize, data={"user": email})
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert "gmail.com" in answer.json()["detail"]


def test_reports_are_built_in_the_background_and_downloaded_by_signed_link(api: Api) -> None:
    user = api.sign_in(api.new_person())
    for name in ("one", "two"):
        user.post("/api/projects", json={"name": name})
    requested = user.post("/api/reports")
    assert requested.status_code == 202
    report_id = requested.json()["id"]

    def ready() -> dict[str, object] | None:
        report = user.get(f"/api/reports/{report_id}").json()
        assert report["status"] in ("pending", "ready"), report
        return report if report["status"] == "ready" else None

    report = eventually(ready, "the report")
    assert report["rows"] == 2
    url = str(report["download_url"])
    download = api.http.get(url)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "projects.csv" in download.headers["content-disposition"]
    rows = download.text.splitlines()
    assert rows[0] == "id,name,created_at"
    assert {row.split(",")[1] for row in rows[1:]} == {"one", "two"}
    partial = api.http.get(url, headers={"Range": "bytes=0-1"})
    assert partial.status_code == 206
    assert partial.content == b"id"
    assert api.http.get(url.replace("sig=", "sig=0")).status_code == 403

    stranger = api.sign_in(api.new_person())
    assert stranger.get(f"/api/reports/{report_id}").status_code == 404
    assert user.get(f"/api/reports/{uuid.uuid4()}").status_code == 404


def test_going_over_the_rate_limit_gets_the_address_banned(api: Api) -> None:
    user = api.sign_in(api.new_person())
    answer = user.get("/api/me")
    assert answer.status_code == 200
    assert "ratelimit-policy" in answer.headers
    count = 1
    while answer.status_code == 200:
        answer = user.get("/api/me")
        count += 1
        assert count < 2000, "never rate limited"
    assert answer.status_code == 429
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert int(answer.headers["retry-after"]) >= 1

    banned = user.get("/api/me")
    assert banned.status_code == 403
    assert banned.json()["type"] == "https://kit.dev/problems/client-blocked"
    assert api.http.get("/health/live").status_code == 403  # banned everywhere, by address

    admin = Api(api.servers, address="10.99.0.1")
    with admin:
        ann = admin.sign_in("ann@acme.example")
        blocks = ann.get("/api/admin/blocks").json()
        assert any(b["network"] == f"{api.address}/32" for b in blocks)
        assert ann.delete(f"/api/admin/blocks/{api.address}").status_code == 204
    assert api.http.get("/health/live").status_code == 200


def test_admins_block_and_unblock_addresses(api: Api) -> None:
    ann = api.sign_in("ann@acme.example")
    editor = api.sign_in(api.new_person(domain="acme.example"))
    refused = editor.post("/api/admin/blocks", json={"address": "192.0.2.200"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM)

    target = "10.77.0.0/16"
    created = ann.post("/api/admin/blocks", json={"address": target, "ttl": 120})
    assert created.status_code == 201
    assert created.json()["network"] == target
    assert created.json()["expires_at"] is not None
    outsider = api.http.get("/health/live", headers={"X-Forwarded-For": "10.77.3.4"})
    assert outsider.status_code == 403
    assert outsider.headers["content-type"].startswith(PROBLEM)
    assert outsider.headers["x-request-id"]

    assert ann.delete(f"/api/admin/blocks/{target}").status_code == 204
    assert api.http.get("/health/live", headers={"X-Forwarded-For": "10.77.3.4"}).status_code == 200

    for bad in ("10.77.0.1/16", "not-an-address", "300.1.1.1"):
        answer = ann.post("/api/admin/blocks", json={"address": bad})
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"].startswith(PROBLEM)
    assert (
        "did you mean 10.77.0.0/16"
        in ann.post("/api/admin/blocks", json={"address": "10.77.0.1/16"}).json()["detail"]
    )


def test_readiness_reports_every_backend(api: Api) -> None:
    answer = api.http.get("/health/ready")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == {
        "database",
        "cache",
        "jobs",
        "storage",
        "mail",
        "auth_stores",
        "rate_limits",
        "shield",
        "oidc",
    }
    for name, check in checks.items():
        assert check["status"] == "ok", name
    assert checks["oidc"]["backend"] == api.servers.issuer
    assert not checks["oidc"]["critical"]
    assert checks["database"]["critical"]
    services = len(api.servers.processes) > 1
    expected = (
        {
            "database": "postgresql",
            "cache": "AsyncRedisCache",
            "jobs": "rq",
            "auth_stores": "AsyncRedisTokenStore",
            "rate_limits": "AsyncRedisRateLimitStorage",
        }
        if services
        else {
            "database": "sqlite",
            "cache": "MemoryCache",
            "jobs": "thread",
            "auth_stores": "MemoryTokenStore",
            "rate_limits": "MemoryRateLimitStorage",
        }
    )
    assert {k: checks[k]["backend"] for k in expected} == expected
    assert checks["storage"]["backend"] == "LocalStorage"
    assert checks["mail"]["backend"] == "console"
    assert api.http.get("/health/live").json() == {"status": "ok"}


def test_deactivated_users_are_refused_with_their_reason(api: Api, servers: Servers) -> None:
    user: User = api.sign_in(api.new_person())
    url = servers.env.get("DATABASE_URL") or f"sqlite:///{servers.var_dir / 'app.db'}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE users SET active = :no WHERE email = :email"),
                {"no": False, "email": user.email},
            )
    finally:
        engine.dispose()
    answer = user.get("/api/me")
    assert answer.status_code == 403
    assert answer.json()["reason"] == "deactivated"
    again = api.http.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert again.status_code == 200  # a refresh only rotates tokens...
    fresh = {"Authorization": f"Bearer {again.json()['access_token']}"}
    assert api.http.get("/api/me", headers=fresh).status_code == 403  # ...that stay refused
    with httpx.Client(
        base_url=api.servers.app_url,
        headers={"X-Forwarded-For": api.address},
        follow_redirects=True,
    ) as browser:
        authorize = browser.get("/auth/dev/login", follow_redirects=False).headers["location"]
        signed_in = browser.post(authorize, data={"user": user.email})
    assert signed_in.status_code == 403
    assert signed_in.json()["reason"] == "deactivated"
