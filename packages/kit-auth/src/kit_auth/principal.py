"""Who is calling: the :class:`Principal` protocol and :class:`SimplePrincipal`.

kit-auth never owns your user model. Anything with these read-only attributes is a
principal (a SQLAlchemy ``User``, a pydantic model, a dataclass):

``id``
    a stable string id;
``active``
    False for pending, disabled or locked accounts (every guard refuses them with a 403
    whose ``reason`` is the optional ``inactive_reason`` attribute, default
    ``"inactive"``);
``roles``
    role names held in the principal's home tenant (``tenant_id``), or globally when the
    app has no tenants;
``scopes``
    OAuth-style scopes granted to the credential (token or API key);
``tenant_id``
    the home tenant, or None;
``platform_admin``
    operator staff; passes a tenant guard only where the route explicitly allows it.

Optional attributes, read with ``getattr``: ``inactive_reason`` (a short word such as
``"pending"``) and ``tenant_roles`` (a mapping ``tenant id -> roles`` for memberships in
other tenants; see :func:`kit_auth.authz.effective_roles`).

Example::

    >>> from kit_auth.principal import Principal, SimplePrincipal
    >>> alice = SimplePrincipal("u1", roles={"editor"}, tenant_id="acme")
    >>> isinstance(alice, Principal), "editor" in alice.roles, alice.active
    (True, True, True)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from kit_auth.exceptions import InvalidInput

__all__ = ["Principal", "SimplePrincipal"]


@runtime_checkable
class Principal(Protocol):
    """The attributes kit-auth reads from a caller (see the module documentation).

    Example::

        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class User:
        ...     id: str
        ...     active: bool = True
        ...     roles: tuple[str, ...] = ("user",)
        ...     scopes: tuple[str, ...] = ()
        ...     tenant_id: str | None = None
        ...     platform_admin: bool = False
        >>> isinstance(User("42"), Principal)
        True
    """

    @property
    def id(self) -> str: ...

    @property
    def active(self) -> bool: ...

    @property
    def roles(self) -> Collection[str]: ...

    @property
    def scopes(self) -> Collection[str]: ...

    @property
    def tenant_id(self) -> str | None: ...

    @property
    def platform_admin(self) -> bool: ...


def _strings(name: str, value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInput(f"SimplePrincipal {name} must be a collection of strings, not {value!r}")
    items = frozenset(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidInput(f"SimplePrincipal {name} must hold non-empty strings, got {item!r}")
    return items


@dataclass(frozen=True, slots=True)
class SimplePrincipal:
    """A ready-made immutable :class:`Principal` (what the adapters build from a token or
    API key when the app gives no loader).

    Any collections may be passed; they are stored as frozensets (``tenant_roles`` as a
    read-only mapping of frozensets), so a ``SimplePrincipal`` is hashable.

    Example::

        >>> p = SimplePrincipal("u1", roles=["admin"], scopes=["users:*"],
        ...                     tenant_roles={"beta": ["editor"]})
        >>> sorted(p.roles), sorted(p.tenant_roles["beta"])
        (['admin'], ['editor'])
        >>> SimplePrincipal("")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.InvalidInput: SimplePrincipal id must be a non-empty string, not ''
    """

    id: str
    active: bool = True
    roles: Collection[str] = frozenset()
    scopes: Collection[str] = frozenset()
    tenant_id: str | None = None
    platform_admin: bool = False
    inactive_reason: str = "inactive"
    tenant_roles: Mapping[str, Collection[str]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInput(f"SimplePrincipal id must be a non-empty string, not {self.id!r}")
        for flag in ("active", "platform_admin"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidInput(f"SimplePrincipal {flag} must be a bool")
        if self.tenant_id is not None and (
            not isinstance(self.tenant_id, str) or not self.tenant_id
        ):
            raise InvalidInput("SimplePrincipal tenant_id must be a non-empty string or None")
        if not isinstance(self.inactive_reason, str) or not self.inactive_reason:
            raise InvalidInput("SimplePrincipal inactive_reason must be a non-empty string")
        object.__setattr__(self, "roles", _strings("roles", self.roles))
        object.__setattr__(self, "scopes", _strings("scopes", self.scopes))
        if not isinstance(self.tenant_roles, Mapping):
            raise InvalidInput("SimplePrincipal tenant_roles must be a mapping tenant id -> roles")
        tenant_roles: dict[str, frozenset[str]] = {}
        for tenant, roles in self.tenant_roles.items():
            if not isinstance(tenant, str) or not tenant:
                raise InvalidInput(
                    f"SimplePrincipal tenant_roles keys must be non-empty strings, got {tenant!r}"
                )
            tenant_roles[tenant] = _strings(f"tenant_roles[{tenant!r}]", roles)
        object.__setattr__(self, "tenant_roles", MappingProxyType(tenant_roles))
