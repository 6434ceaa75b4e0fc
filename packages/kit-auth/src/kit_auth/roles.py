"""Role hierarchies and role-based permissions.

A :class:`RoleHierarchy` maps each role to the roles it *inherits*: holding a role means
holding everything it inherits, transitively. The default hierarchy is a ladder::

    admin  ->  moderator  ->  editor  ->  user

(an ``admin`` is also a ``moderator``, an ``editor`` and a ``user``; a ``user`` is only a
``user``). Closures are computed once at construction, so checks are set lookups.

:class:`Permissions` grants named permissions (``"articles.publish"``) to roles; a
permission granted to a role is granted to every role that inherits it.

Example::

    >>> from kit_auth.roles import Permissions, RoleHierarchy
    >>> roles = RoleHierarchy({"admin": ["editor", "billing"], "editor": ["user"],
    ...                        "billing": [], "user": []})
    >>> sorted(roles.expand({"admin"}))
    ['admin', 'billing', 'editor', 'user']
    >>> roles.has_role({"editor"}, "user"), roles.has_role({"editor"}, "admin")
    (True, False)
    >>> perms = Permissions({"articles.read": ["user"], "invoices.pay": ["billing"]},
    ...                     hierarchy=roles)
    >>> perms.has_permission({"admin"}, "invoices.pay")
    True
    >>> sorted(perms.permissions_of({"editor"}))
    ['articles.read']
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from kit_auth.exceptions import ConfigurationError, InvalidInput

__all__ = ["DEFAULT_HIERARCHY", "DEFAULT_ROLES", "Permissions", "RoleHierarchy"]

#: The default ladder: each role inherits the one below it.
DEFAULT_ROLES: Mapping[str, tuple[str, ...]] = {
    "admin": ("moderator",),
    "moderator": ("editor",),
    "editor": ("user",),
    "user": (),
}

_ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_PERMISSION_NAME = re.compile(r"[A-Za-z0-9_\-]+(?:[.:][A-Za-z0-9_\-]+)*")


def _check_name(kind: str, name: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        raise ConfigurationError(
            f"{kind} name {name!r} is invalid: use letters, digits, '_', '-' and '.'"
            + (" (':' or '.' between parts)" if kind == "permission" else "")
        )
    return name


def _role_set(roles: Iterable[str]) -> Collection[str]:
    if isinstance(roles, str):
        raise InvalidInput(f"roles must be a collection of role names, not the string {roles!r}")
    if isinstance(roles, (set, frozenset, Mapping)):
        return roles
    return frozenset(roles)


class RoleHierarchy:
    """Roles with transitive inheritance, checked at construction.

    ``parents`` maps every role to the roles it inherits (an empty list for none); a role
    named only as a parent, or a cycle, raises :class:`ConfigurationError`. Without
    ``parents`` the default ladder ``admin > moderator > editor > user`` is used.

    Roles a principal holds that the hierarchy does not define grant only themselves;
    asking about an undefined *required* role is a configuration error (a typo in a route).

    Example::

        >>> RoleHierarchy({"a": ["b"], "b": ["a"]})
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: role hierarchy has a cycle: a -> b -> a
        >>> RoleHierarchy({"admin": ["staff"]})
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: role 'admin' inherits 'staff', which is not defined: add "staff": [] to the hierarchy
    """

    __slots__ = ("_closure", "_granted_by")

    def __init__(self, parents: Mapping[str, Iterable[str]] | None = None) -> None:
        if parents is None:
            parents = DEFAULT_ROLES
        if not isinstance(parents, Mapping) or not parents:
            raise ConfigurationError(
                "RoleHierarchy needs a non-empty mapping role -> inherited roles, "
                'e.g. {"admin": ["user"], "user": []}'
            )
        graph: dict[str, tuple[str, ...]] = {}
        for role, inherited in parents.items():
            _check_name("role", role, _ROLE_NAME)
            if isinstance(inherited, str) or not isinstance(inherited, Iterable):
                raise ConfigurationError(
                    f"role {role!r} must map to a list of inherited roles, not {inherited!r}"
                )
            graph[role] = tuple(inherited)
        for role, inherited in graph.items():
            for parent in inherited:
                _check_name("role", parent, _ROLE_NAME)
                if parent not in graph:
                    raise ConfigurationError(
                        f"role {role!r} inherits {parent!r}, which is not defined: "
                        f'add "{parent}": [] to the hierarchy'
                    )
        closure: dict[str, frozenset[str]] = {}
        for role in graph:
            self._visit(role, graph, closure, [])
        self._closure = closure
        granted_by: dict[str, set[str]] = {role: set() for role in graph}
        for holder, implied in closure.items():
            for role in implied:
                granted_by[role].add(holder)
        self._granted_by = {role: frozenset(holders) for role, holders in granted_by.items()}

    @staticmethod
    def _visit(
        role: str,
        graph: Mapping[str, tuple[str, ...]],
        closure: dict[str, frozenset[str]],
        path: list[str],
    ) -> frozenset[str]:
        done = closure.get(role)
        if done is not None:
            return done
        if role in path:
            cycle = [*path[path.index(role) :], role]
            raise ConfigurationError(f"role hierarchy has a cycle: {' -> '.join(cycle)}")
        path.append(role)
        result = {role}
        for parent in graph[role]:
            result |= RoleHierarchy._visit(parent, graph, closure, path)
        path.pop()
        closure[role] = frozenset(result)
        return closure[role]

    @property
    def roles(self) -> frozenset[str]:
        """Every role the hierarchy defines.

        >>> sorted(RoleHierarchy().roles)
        ['admin', 'editor', 'moderator', 'user']
        """
        return frozenset(self._closure)

    def check_role(self, role: str) -> str:
        """Return ``role`` if the hierarchy defines it, else raise :class:`ConfigurationError`.

        >>> RoleHierarchy().check_role("admin")
        'admin'
        """
        if not isinstance(role, str) or role not in self._closure:
            raise ConfigurationError(
                f"role {role!r} is not defined in the role hierarchy "
                f"(defined: {', '.join(sorted(self._closure))})"
            )
        return role

    def expand(self, roles: Iterable[str]) -> frozenset[str]:
        """The roles held plus every role they inherit.

        >>> sorted(RoleHierarchy().expand(["moderator", "auditor"]))
        ['auditor', 'editor', 'moderator', 'user']
        """
        result: set[str] = set()
        for role in _role_set(roles):
            result.update(self._closure.get(role, (role,)))
        return frozenset(result)

    def has_role(self, roles: Iterable[str], required: str) -> bool:
        """Whether holding ``roles`` means holding ``required`` (directly or inherited).

        >>> RoleHierarchy().has_role({"admin"}, "editor")
        True
        """
        holders = self._granted_by.get(required)
        if holders is None:
            self.check_role(required)
            raise AssertionError("unreachable")  # pragma: no cover
        return not holders.isdisjoint(_role_set(roles))

    def holders_of(self, required: str) -> frozenset[str]:
        """Every role that grants ``required`` (itself and the roles inheriting it).

        >>> sorted(RoleHierarchy().holders_of("moderator"))
        ['admin', 'moderator']
        """
        return self._granted_by[self.check_role(required)]

    def __repr__(self) -> str:
        return f"RoleHierarchy(roles={sorted(self._closure)!r})"


DEFAULT_HIERARCHY = RoleHierarchy()
"""The default ladder ``admin > moderator > editor > user``."""


class Permissions:
    """Named permissions granted to roles of a :class:`RoleHierarchy`.

    ``grants`` maps each permission to the roles granted it directly; every role inheriting
    one of them has it too. Permission names are dotted or colon-separated words
    (``"articles.publish"``, ``"billing:refund"``). Unknown roles, bad names and asking
    about an undefined permission raise :class:`ConfigurationError`.

    Example::

        >>> perms = Permissions({"posts.delete": ["moderator"]})
        >>> perms.has_permission({"admin"}, "posts.delete"), perms.has_permission({"editor"}, "posts.delete")
        (True, False)
        >>> Permissions({"posts.delete": ["janitor"]})
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: permission 'posts.delete' is granted to role 'janitor', which is not defined in the role hierarchy (defined: admin, editor, moderator, user)
    """

    __slots__ = ("_by_role", "_holders", "hierarchy")

    def __init__(
        self, grants: Mapping[str, Iterable[str]], *, hierarchy: RoleHierarchy | None = None
    ) -> None:
        if hierarchy is None:
            hierarchy = DEFAULT_HIERARCHY
        if not isinstance(hierarchy, RoleHierarchy):
            raise ConfigurationError("Permissions hierarchy must be a RoleHierarchy")
        if not isinstance(grants, Mapping):
            raise ConfigurationError(
                'Permissions needs a mapping permission -> roles, e.g. {"posts.read": ["user"]}'
            )
        self.hierarchy = hierarchy
        holders: dict[str, frozenset[str]] = {}
        by_role: dict[str, set[str]] = {}
        for permission, roles in grants.items():
            _check_name("permission", permission, _PERMISSION_NAME)
            if isinstance(roles, str) or not isinstance(roles, Iterable):
                raise ConfigurationError(
                    f"permission {permission!r} must map to a list of roles, not {roles!r}"
                )
            granted: set[str] = set()
            for role in roles:
                if not isinstance(role, str) or role not in hierarchy.roles:
                    raise ConfigurationError(
                        f"permission {permission!r} is granted to role {role!r}, which is not "
                        f"defined in the role hierarchy (defined: {', '.join(sorted(hierarchy.roles))})"
                    )
                granted |= hierarchy.holders_of(role)
            holders[permission] = frozenset(granted)
            for role in granted:
                by_role.setdefault(role, set()).add(permission)
        self._holders = holders
        self._by_role = {role: frozenset(perms) for role, perms in by_role.items()}

    @property
    def names(self) -> frozenset[str]:
        """Every defined permission.

        >>> sorted(Permissions({"a.read": ["user"]}).names)
        ['a.read']
        """
        return frozenset(self._holders)

    def check_permission(self, permission: str) -> str:
        """Return ``permission`` if defined, else raise :class:`ConfigurationError`.

        >>> Permissions({"a.read": ["user"]}).check_permission("a.read")
        'a.read'
        """
        if not isinstance(permission, str) or permission not in self._holders:
            raise ConfigurationError(
                f"permission {permission!r} is not defined "
                f"(defined: {', '.join(sorted(self._holders)) or 'none'})"
            )
        return permission

    def has_permission(self, roles: Iterable[str], permission: str) -> bool:
        """Whether any of ``roles`` (or a role they inherit) is granted ``permission``.

        >>> Permissions({"a.read": ["user"]}).has_permission(["editor"], "a.read")
        True
        """
        holders = self._holders.get(permission)
        if holders is None:
            self.check_permission(permission)
            raise AssertionError("unreachable")  # pragma: no cover
        return not holders.isdisjoint(_role_set(roles))

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """Every permission ``roles`` have, inherited grants included.

        >>> sorted(Permissions({"a.read": ["user"], "a.write": ["editor"]}).permissions_of(["user"]))
        ['a.read']
        """
        result: set[str] = set()
        for role in _role_set(roles):
            result |= self._by_role.get(role, frozenset())
        return frozenset(result)

    def __repr__(self) -> str:
        return f"Permissions(names={sorted(self._holders)!r})"
