"""Authorization guards: active accounts, roles, permissions, scopes and tenants.

Each guard returns None when the principal passes and raises a
:class:`~kit_auth.exceptions.PermissionDenied` subclass (HTTP 403) whose message says what
is missing. Every guard first applies :func:`require_active`, so a pending or disabled
account never gets through, and answers ``None`` (nobody signed in) with
:class:`~kit_auth.exceptions.NotAuthenticated` (401).

Tenants: ``principal.roles`` are the roles held in the principal's home tenant
(``principal.tenant_id``; globally when it is None). An optional
``principal.tenant_roles`` mapping (``tenant id -> roles``) lists memberships in other
tenants. :func:`effective_roles` gives the roles that count in one tenant, so an admin of
tenant ``acme`` is nobody in tenant ``globex`` unless ``tenant_roles`` says otherwise.

Example::

    >>> from kit_auth.authz import require_roles, require_same_tenant
    >>> from kit_auth.principal import SimplePrincipal
    >>> alice = SimplePrincipal("u1", roles={"admin"}, tenant_id="acme")
    >>> require_roles(alice, "editor")            # admin inherits editor
    >>> require_same_tenant(alice, "globex")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.TenantMismatch: This resource belongs to another tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from kit_auth.exceptions import (
    InactivePrincipal,
    InsufficientScope,
    InvalidInput,
    MissingRole,
    NotAuthenticated,
    TenantMismatch,
)
from kit_auth.principal import Principal
from kit_auth.roles import DEFAULT_HIERARCHY, Permissions, RoleHierarchy
from kit_auth.scopes import missing_scopes

__all__ = [
    "effective_roles",
    "inactive_reason",
    "require_active",
    "require_permission",
    "require_roles",
    "require_same_tenant",
    "require_scopes",
    "tenants_of",
]


def _check_principal(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("Sign in first: this needs an authenticated caller.")
    if not isinstance(principal, Principal):
        raise InvalidInput(
            f"expected a Principal (id, active, roles, scopes, tenant_id, platform_admin), "
            f"got {type(principal).__name__}"
        )
    return principal


def _tenant_roles(principal: Principal) -> Mapping[str, Collection[str]]:
    value = getattr(principal, "tenant_roles", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("principal.tenant_roles must be a mapping tenant id -> roles")
    return value


def _check_tenant_id(tenant_id: object) -> str:
    if not isinstance(tenant_id, str) or not tenant_id:
        raise InvalidInput(f"tenant_id must be a non-empty string, not {tenant_id!r}")
    return tenant_id


def inactive_reason(principal: Principal) -> str:
    """The principal's ``inactive_reason`` attribute, or ``"inactive"``.

    >>> from kit_auth.principal import SimplePrincipal
    >>> inactive_reason(SimplePrincipal("u1", active=False, inactive_reason="pending"))
    'pending'
    """
    reason = getattr(principal, "inactive_reason", None)
    return reason if isinstance(reason, str) and reason else "inactive"


def require_active(principal: Principal | None) -> None:
    """Raise :class:`~kit_auth.exceptions.InactivePrincipal` (403, with ``reason``) unless
    the principal is active.

    >>> from kit_auth.principal import SimplePrincipal
    >>> require_active(SimplePrincipal("u1", active=False, inactive_reason="pending"))
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.InactivePrincipal: This account is not active (pending); it cannot be used until an administrator activates it.
    """
    principal = _check_principal(principal)
    if principal.active is not True:
        reason = inactive_reason(principal)
        raise InactivePrincipal(
            f"This account is not active ({reason}); it cannot be used until an "
            "administrator activates it.",
            reason=reason,
        )


def tenants_of(principal: Principal) -> frozenset[str]:
    """The tenants a principal belongs to: its home tenant plus ``tenant_roles`` keys.

    >>> from kit_auth.principal import SimplePrincipal
    >>> sorted(tenants_of(SimplePrincipal("u1", tenant_id="a", tenant_roles={"b": ["user"]})))
    ['a', 'b']
    """
    principal = _check_principal(principal)
    tenants = set(_tenant_roles(principal))
    if principal.tenant_id is not None:
        tenants.add(principal.tenant_id)
    return frozenset(tenants)


def effective_roles(principal: Principal, tenant_id: str | None = None) -> frozenset[str]:
    """The roles (as held, before hierarchy expansion) that count in ``tenant_id``.

    With no ``tenant_id``, or the principal's home tenant: ``principal.roles`` plus any
    ``tenant_roles`` entry for the home tenant. In another tenant: only
    ``tenant_roles[tenant_id]`` (empty when the principal is no member).

    >>> from kit_auth.principal import SimplePrincipal
    >>> p = SimplePrincipal("u1", roles={"admin"}, tenant_id="acme",
    ...                     tenant_roles={"globex": ["editor"]})
    >>> sorted(effective_roles(p)), sorted(effective_roles(p, "globex")), sorted(effective_roles(p, "x"))
    (['admin'], ['editor'], [])
    """
    principal = _check_principal(principal)
    memberships = _tenant_roles(principal)
    if tenant_id is None or tenant_id == principal.tenant_id:
        home = principal.tenant_id
        extra = memberships.get(home, ()) if home is not None else ()
        return frozenset(principal.roles).union(extra)
    _check_tenant_id(tenant_id)
    return frozenset(memberships.get(tenant_id, ()))


def require_roles(
    principal: Principal | None,
    *roles: str,
    hierarchy: RoleHierarchy | None = None,
    tenant_id: str | None = None,
) -> None:
    """Require *every* role in ``roles`` (held directly or inherited through
    ``hierarchy``, default ``admin > moderator > editor > user``) in ``tenant_id`` (see
    :func:`effective_roles`). Raises :class:`~kit_auth.exceptions.MissingRole` naming the
    missing roles; an undefined role is a :class:`~kit_auth.exceptions.ConfigurationError`.

    >>> from kit_auth.principal import SimplePrincipal
    >>> require_roles(SimplePrincipal("u1", roles={"editor"}), "moderator")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.MissingRole: This needs the role moderator.
    """
    hierarchy = DEFAULT_HIERARCHY if hierarchy is None else hierarchy
    if not isinstance(hierarchy, RoleHierarchy):
        raise InvalidInput("hierarchy must be a RoleHierarchy")
    if not roles:
        raise InvalidInput("require_roles needs at least one role")
    require_active(principal)
    assert principal is not None
    held = effective_roles(principal, tenant_id)
    missing = [role for role in roles if not hierarchy.has_role(held, role)]
    if missing:
        where = f" in tenant {tenant_id}" if tenant_id is not None else ""
        raise MissingRole(
            f"This needs the role{'s' if len(missing) > 1 else ''} {', '.join(missing)}{where}."
        )


def require_permission(
    principal: Principal | None,
    permission: str,
    *,
    permissions: Permissions,
    tenant_id: str | None = None,
) -> None:
    """Require ``permission``, granted through the principal's roles in ``tenant_id``.
    Raises :class:`~kit_auth.exceptions.MissingRole` naming the permission.

    >>> from kit_auth.principal import SimplePrincipal
    >>> from kit_auth.roles import Permissions
    >>> perms = Permissions({"posts.delete": ["moderator"]})
    >>> require_permission(SimplePrincipal("u1", roles={"admin"}), "posts.delete", permissions=perms)
    >>> require_permission(SimplePrincipal("u2", roles={"user"}), "posts.delete", permissions=perms)
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.MissingRole: This needs the permission posts.delete, which none of your roles grant.
    """
    if not isinstance(permissions, Permissions):
        raise InvalidInput("permissions must be a Permissions instance")
    permissions.check_permission(permission)
    require_active(principal)
    assert principal is not None
    if not permissions.has_permission(effective_roles(principal, tenant_id), permission):
        where = f" in tenant {tenant_id}" if tenant_id is not None else ""
        raise MissingRole(
            f"This needs the permission {permission}{where}, which none of your roles grant."
        )


def require_scopes(
    principal: Principal | None, *scopes: str, granted: Collection[str] | None = None
) -> None:
    """Require every scope in ``scopes`` among ``principal.scopes`` (wildcards as in
    :mod:`kit_auth.scopes`). Raises :class:`~kit_auth.exceptions.InsufficientScope` with
    ``required`` set to the missing scopes.

    ``granted`` replaces ``principal.scopes``: the adapters pass the scopes of the
    credential (token or API key) the request came with, since a key limited to
    ``reports:read`` must not gain its owner's wider scopes.

    >>> from kit_auth.principal import SimplePrincipal
    >>> require_scopes(SimplePrincipal("u1", scopes={"users:*"}), "users:read")
    >>> require_scopes(SimplePrincipal("u1", scopes={"users:read"}), "users:write")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.InsufficientScope: This needs the scope users:write; use a token or API key that grants it.
    """
    if not scopes:
        raise InvalidInput("require_scopes needs at least one scope")
    require_active(principal)
    assert principal is not None
    missing = missing_scopes(principal.scopes if granted is None else granted, scopes)
    if missing:
        plural = len(missing) > 1
        raise InsufficientScope(
            f"This needs the scope{'s' if plural else ''} {' '.join(missing)}; use a token "
            f"or API key that grants {'them' if plural else 'it'}.",
            required=missing,
        )


def require_same_tenant(
    principal: Principal | None, tenant_id: str, *, allow_platform_admin: bool = False
) -> None:
    """Require the resource's ``tenant_id`` to be one of the principal's tenants (its home
    tenant or a ``tenant_roles`` membership). Platform admins pass only when the call
    says ``allow_platform_admin=True``. Raises :class:`~kit_auth.exceptions.TenantMismatch`
    without naming either tenant.

    >>> from kit_auth.principal import SimplePrincipal
    >>> ops = SimplePrincipal("op", platform_admin=True)
    >>> require_same_tenant(ops, "acme", allow_platform_admin=True)
    >>> require_same_tenant(ops, "acme")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.TenantMismatch: This resource belongs to another tenant.
    """
    _check_tenant_id(tenant_id)
    if not isinstance(allow_platform_admin, bool):
        raise InvalidInput("allow_platform_admin must be a bool")
    require_active(principal)
    assert principal is not None
    if tenant_id == principal.tenant_id or tenant_id in _tenant_roles(principal):
        return
    if allow_platform_admin and principal.platform_admin is True:
        return
    raise TenantMismatch("This resource belongs to another tenant.")
