"""Principal, role hierarchy, permissions, scopes, tenant and activity guards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_auth.authz import (
    effective_roles,
    require_active,
    require_permission,
    require_roles,
    require_same_tenant,
    require_scopes,
    tenants_of,
)
from kit_auth.exceptions import (
    ConfigurationError,
    InactivePrincipal,
    InsufficientScope,
    InvalidInput,
    MissingRole,
    NotAuthenticated,
    PermissionDenied,
    TenantMismatch,
)
from kit_auth.principal import Principal, SimplePrincipal
from kit_auth.roles import DEFAULT_HIERARCHY, Permissions, RoleHierarchy
from kit_auth.scopes import (
    has_scopes,
    missing_scopes,
    parse_scopes,
    scope_matches,
    validate_scope,
)

segment = st.from_regex(r"[A-Za-z0-9_.\-]{1,8}", fullmatch=True)
concrete_scope = st.lists(segment, min_size=1, max_size=5).map(":".join)
any_scope = st.one_of(concrete_scope, concrete_scope.map(lambda s: s + ":*"), st.just("*"))


@dataclass
class AppUser:
    """An app's own user model (mutable, plain tuples, extra attributes)."""

    id: str
    active: bool = True
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tenant_id: str | None = None
    platform_admin: bool = False
    email: str = "x@example.com"
    tenant_roles: dict[str, list[str]] = field(default_factory=dict)


# --- principal -------------------------------------------------------------------------


def test_app_models_are_principals() -> None:
    assert isinstance(AppUser("1"), Principal)
    assert isinstance(SimplePrincipal("1"), Principal)
    assert not isinstance(object(), Principal)


def test_simple_principal_normalises_and_validates() -> None:
    p = SimplePrincipal("u1", roles=["a", "a"], scopes=("x:y",), tenant_roles={"t": ["b"]})
    assert p.roles == frozenset({"a"})
    assert p.tenant_roles["t"] == frozenset({"b"})
    with pytest.raises(TypeError):
        p.tenant_roles["t"] = frozenset()  # type: ignore[index]
    assert hash(p) == hash(SimplePrincipal("u1", roles=frozenset({"a"}), scopes=frozenset({"x:y"})))
    for kwargs in (
        {"roles": "admin"},
        {"roles": ["ok", ""]},
        {"scopes": [3]},
        {"tenant_id": ""},
        {"active": "yes"},
        {"platform_admin": 1},
        {"inactive_reason": ""},
        {"tenant_roles": {"": ["a"]}},
        {"tenant_roles": ["t"]},
    ):
        with pytest.raises(InvalidInput):
            SimplePrincipal("u1", **kwargs)


# --- role hierarchy --------------------------------------------------------------------


def test_default_hierarchy_is_a_ladder() -> None:
    assert DEFAULT_HIERARCHY.expand({"admin"}) == {"admin", "moderator", "editor", "user"}
    assert DEFAULT_HIERARCHY.expand({"editor"}) == {"editor", "user"}
    assert DEFAULT_HIERARCHY.expand({"user"}) == {"user"}
    assert DEFAULT_HIERARCHY.has_role({"moderator"}, "editor")
    assert not DEFAULT_HIERARCHY.has_role({"moderator"}, "admin")
    assert not DEFAULT_HIERARCHY.has_role(set(), "user")
    assert DEFAULT_HIERARCHY.has_role(["user", "admin"], "moderator")


def test_custom_hierarchy_closure_is_transitive_over_a_dag() -> None:
    roles = RoleHierarchy(
        {
            "owner": ["admin"],
            "admin": ["editor", "billing"],
            "editor": ["user"],
            "billing": ["viewer"],
            "user": ["viewer"],
            "viewer": [],
        }
    )
    assert roles.expand({"owner"}) == {"owner", "admin", "editor", "billing", "user", "viewer"}
    assert roles.expand({"billing"}) == {"billing", "viewer"}
    assert roles.holders_of("viewer") == roles.roles
    assert roles.holders_of("billing") == {"billing", "admin", "owner"}
    assert not roles.has_role({"editor"}, "billing")
    # a held role the hierarchy does not define grants only itself
    assert roles.expand({"ghost"}) == {"ghost"}
    assert not roles.has_role({"ghost"}, "viewer")


@pytest.mark.parametrize(
    ("parents", "message"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "cycle: a -> b -> c -> a"),
        ({"a": ["a"]}, "cycle: a -> a"),
        ({"x": [], "a": ["b"], "b": ["a"]}, "cycle: a -> b -> a"),
        ({"admin": ["staff"]}, "'staff', which is not defined"),
        ({"admin": "user", "user": []}, "must map to a list"),
        ({"bad role": []}, "role name 'bad role' is invalid"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_hierarchies_are_refused_naming_the_problem(parents: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RoleHierarchy(parents)  # type: ignore[arg-type]


def test_asking_for_an_undefined_role_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'admn' is not defined"):
        DEFAULT_HIERARCHY.has_role({"admin"}, "admn")
    with pytest.raises(InvalidInput):
        DEFAULT_HIERARCHY.expand("admin")


# --- permissions -----------------------------------------------------------------------


def test_permissions_are_inherited_along_the_hierarchy() -> None:
    perms = Permissions(
        {"posts.read": ["user"], "posts.write": ["editor"], "posts.delete": ["moderator"]}
    )
    assert perms.permissions_of({"user"}) == {"posts.read"}
    assert perms.permissions_of({"editor"}) == {"posts.read", "posts.write"}
    assert perms.permissions_of({"admin"}) == perms.names
    assert perms.permissions_of({"stranger"}) == frozenset()
    assert perms.has_permission({"admin"}, "posts.delete")
    assert not perms.has_permission({"editor"}, "posts.delete")


def test_permissions_on_a_custom_hierarchy_and_bad_definitions() -> None:
    roles = RoleHierarchy(
        {"admin": ["editor", "billing"], "editor": ["user"], "billing": [], "user": []}
    )
    perms = Permissions({"invoices.pay": ["billing"], "billing:refund": ["admin"]}, hierarchy=roles)
    assert perms.has_permission({"admin"}, "invoices.pay")
    assert not perms.has_permission({"editor"}, "invoices.pay")
    with pytest.raises(ConfigurationError, match="not defined"):
        perms.has_permission({"admin"}, "invoices.refund")
    with pytest.raises(ConfigurationError, match="role 'moderator'"):
        Permissions({"x.y": ["moderator"]}, hierarchy=roles)
    with pytest.raises(ConfigurationError, match=r"permission name 'x\.\.y' is invalid"):
        Permissions({"x..y": ["user"]}, hierarchy=roles)
    with pytest.raises(ConfigurationError, match="list of roles"):
        Permissions({"x.y": "user"})
    with pytest.raises(ConfigurationError, match="RoleHierarchy"):
        Permissions({}, hierarchy={"a": []})  # type: ignore[arg-type]


# --- scopes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "required", "expected"),
    [
        ("users:read", "users:read", True),
        ("users:read", "users:write", False),
        ("users:*", "users:read", True),
        ("users:*", "users:write:all", True),
        ("users:*", "users:x:*", True),
        ("users:*", "users", False),
        ("users:*", "userspace:read", False),
        ("users:read:*", "users:read", False),
        ("users:read", "users:*", False),
        ("*", "users", True),
        ("*", "users:*", True),
        ("*", "*", True),
        ("users:*", "*", False),
    ],
)
def test_scope_matching(granted: str, required: str, expected: bool) -> None:
    assert scope_matches(granted, required) is expected
    assert has_scopes({granted}, [required]) is expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "users:",
        ":users",
        "a::b",
        "*:read",
        "user*",
        "users:*:read",
        "a b",
        "é",
        "a/b",
        "x" * 201,
        "**",
    ],
)
def test_malformed_scopes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validate_scope(bad)
    with pytest.raises(InvalidInput):
        has_scopes({"*"}, [bad])


def test_scope_collections() -> None:
    assert has_scopes({"a:read", "b:*"}, ["a:read", "b:c:d"])
    assert has_scopes(["a:read"], [])
    assert missing_scopes(("a:read",), ["a:write", "a:read", "c"]) == ("a:write", "c")
    # a malformed granted scope is harmless: it never grants anything
    assert not has_scopes({"users:", "users::read"}, ["users:read"])
    assert parse_scopes("  a:read\tb:*  ") == {"a:read", "b:*"}
    with pytest.raises(InvalidInput):
        parse_scopes("a:read a::b")
    with pytest.raises(InvalidInput, match="not one string"):
        has_scopes("users:read", ["users:read"])
    with pytest.raises(InvalidInput, match="not one string"):
        has_scopes({"users:read"}, "users:read")
    with pytest.raises(InvalidInput, match="must be a string"):
        has_scopes({"users:read"}, [None])  # type: ignore[list-item]


@given(any_scope)
def test_star_grants_every_valid_scope(scope: str) -> None:
    assert scope_matches("*", scope)


@given(concrete_scope, concrete_scope)
def test_a_prefix_wildcard_grants_exactly_the_scopes_below_it(prefix: str, rest: str) -> None:
    assert scope_matches(f"{prefix}:*", f"{prefix}:{rest}")
    assert not scope_matches(f"{prefix}:*", prefix)
    assert scope_matches(f"{prefix}:{rest}", f"{prefix}:{rest}")


@given(any_scope, any_scope)
def test_matching_agrees_with_a_segment_model(granted: str, required: str) -> None:
    g, r = granted.split(":"), required.split(":")
    if g == ["*"]:
        expected = True
    elif g[-1] == "*":
        expected = len(r) > len(g) - 1 and r[: len(g) - 1] == g[:-1]
    else:
        expected = g == r
    assert scope_matches(granted, required) is expected


# --- guards ----------------------------------------------------------------------------


def test_inactive_principals_are_refused_with_their_reason_by_every_guard() -> None:
    pending = SimplePrincipal(
        "u1", active=False, inactive_reason="pending", roles={"admin"}, scopes={"*"}, tenant_id="t"
    )
    perms = Permissions({"a.b": ["user"]})
    checks: list[Callable[[], None]] = [
        lambda: require_active(pending),
        lambda: require_roles(pending, "user"),
        lambda: require_permission(pending, "a.b", permissions=perms),
        lambda: require_scopes(pending, "x"),
        lambda: require_same_tenant(pending, "t"),
    ]
    for check in checks:
        with pytest.raises(InactivePrincipal) as info:
            check()
        assert info.value.reason == "pending"
        assert info.value.status == 403
        assert info.value.problem()["reason"] == "pending"
        assert "pending" in str(info.value)
    # an app model without inactive_reason reports the generic reason
    with pytest.raises(InactivePrincipal) as info:
        require_active(AppUser("2", active=False))
    assert info.value.reason == "inactive"
    require_active(AppUser("3"))


def test_guards_answer_anonymous_with_401_and_junk_with_400() -> None:
    with pytest.raises(NotAuthenticated):
        require_roles(None, "user")
    with pytest.raises(InvalidInput, match="expected a Principal"):
        require_active("alice")  # type: ignore[arg-type]


def test_require_roles() -> None:
    editor = AppUser("1", roles=("editor",))
    require_roles(editor, "user", "editor")
    with pytest.raises(MissingRole, match="the roles moderator, admin") as info:
        require_roles(editor, "user", "moderator", "admin")
    assert info.value.status == 403
    with pytest.raises(ConfigurationError):
        require_roles(editor, "editr")
    with pytest.raises(InvalidInput):
        require_roles(editor)
    custom = RoleHierarchy({"owner": ["member"], "member": []})
    require_roles(AppUser("2", roles=("owner",)), "member", hierarchy=custom)
    with pytest.raises(ConfigurationError):
        require_roles(AppUser("2", roles=("owner",)), "user", hierarchy=custom)


def test_roles_are_scoped_to_tenants() -> None:
    p = AppUser("1", roles=("admin",), tenant_id="acme", tenant_roles={"globex": ["editor"]})
    assert effective_roles(p) == {"admin"}
    assert effective_roles(p, "acme") == {"admin"}
    assert effective_roles(p, "globex") == {"editor"}
    assert effective_roles(p, "initech") == frozenset()
    assert tenants_of(p) == {"acme", "globex"}
    require_roles(p, "admin", tenant_id="acme")
    require_roles(p, "user", tenant_id="globex")
    with pytest.raises(MissingRole, match="moderator in tenant globex"):
        require_roles(p, "moderator", tenant_id="globex")
    with pytest.raises(MissingRole):
        require_roles(p, "user", tenant_id="initech")
    perms = Permissions({"posts.delete": ["moderator"]})
    require_permission(p, "posts.delete", permissions=perms, tenant_id="acme")
    with pytest.raises(MissingRole, match=r"permission posts\.delete in tenant globex"):
        require_permission(p, "posts.delete", permissions=perms, tenant_id="globex")
    # extra roles for the home tenant add to the principal's roles
    q = SimplePrincipal("2", roles={"user"}, tenant_id="acme", tenant_roles={"acme": ["billing"]})
    assert effective_roles(q) == {"user", "billing"}
    # a tenantless principal has no roles inside a tenant unless it is a member
    staff = SimplePrincipal("3", roles={"admin"})
    assert effective_roles(staff, "acme") == frozenset()
    with pytest.raises(InvalidInput):
        effective_roles(p, "")


def test_require_permission_names_the_permission() -> None:
    perms = Permissions({"reports.export": ["moderator"]})
    require_permission(AppUser("1", roles=("admin",)), "reports.export", permissions=perms)
    with pytest.raises(MissingRole, match=r"permission reports\.export") as info:
        require_permission(AppUser("1", roles=("editor",)), "reports.export", permissions=perms)
    assert isinstance(info.value, PermissionDenied)
    with pytest.raises(ConfigurationError, match=r"'reports\.exprt' is not defined"):
        require_permission(AppUser("1", roles=("admin",)), "reports.exprt", permissions=perms)
    with pytest.raises(InvalidInput):
        require_permission(AppUser("1"), "reports.export", permissions={"x": 1})  # type: ignore[arg-type]


def test_require_scopes_lists_what_is_missing() -> None:
    p = AppUser("1", scopes=("users:read", "billing:*"))
    require_scopes(p, "users:read", "billing:refund")
    with pytest.raises(InsufficientScope) as info:
        require_scopes(p, "users:read", "users:write", "admin")
    assert info.value.required == ("users:write", "admin")
    assert "users:write admin" in str(info.value)
    with pytest.raises(InvalidInput):
        require_scopes(p, "users:")
    with pytest.raises(InvalidInput):
        require_scopes(p)


def test_same_tenant_and_the_explicit_platform_admin_rule() -> None:
    member = AppUser("1", tenant_id="acme", tenant_roles={"globex": ["user"]})
    require_same_tenant(member, "acme")
    require_same_tenant(member, "globex")
    with pytest.raises(TenantMismatch) as info:
        require_same_tenant(member, "initech")
    assert "initech" not in str(info.value) and "acme" not in str(info.value)
    # allow_platform_admin does nothing for a non-admin
    with pytest.raises(TenantMismatch):
        require_same_tenant(member, "initech", allow_platform_admin=True)
    ops = AppUser("2", platform_admin=True, tenant_id="operator")
    with pytest.raises(TenantMismatch):
        require_same_tenant(ops, "acme")
    require_same_tenant(ops, "acme", allow_platform_admin=True)
    # a tenantless principal never matches a tenant
    with pytest.raises(TenantMismatch):
        require_same_tenant(AppUser("3"), "acme")
    for bad in (None, "", 5):
        with pytest.raises(InvalidInput):
            require_same_tenant(member, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        require_same_tenant(ops, "acme", allow_platform_admin="yes")  # type: ignore[arg-type]
