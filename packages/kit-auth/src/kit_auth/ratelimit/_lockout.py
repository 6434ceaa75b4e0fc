"""Login lockout: failed sign-ins counted per account and per address."""

from __future__ import annotations

import hashlib
import math

from kit_auth.exceptions import ConfigurationError, InvalidInput, RateLimited
from kit_auth.ratelimit._base import RateLimitStorage
from kit_auth.ratelimit._client import ip_key
from kit_auth.ratelimit._limit import Decision, RateLimit
from kit_auth.ratelimit._limiter import FailurePolicy, RateLimiter

__all__ = ["LoginLockout"]

_MAX_ACCOUNT = 1024


class LoginLockout:
    """Lock sign-in after too many failures, per account (OWASP) and per address.

    Counting per account stops password guessing spread over many addresses (a botnet);
    counting per address stops one address from spraying many accounts. Call
    :meth:`check` before verifying the password (it consumes nothing and raises
    :class:`~kit_auth.exceptions.RateLimited` with ``retry_after`` while locked),
    :meth:`failed` after a wrong password and :meth:`succeeded` after a right one (it
    clears the account's failures, not the address's).

    Only sign-in is locked: keep the forgot-password flow available while an account is
    locked, so an attacker who locks a victim out cannot keep them out (OWASP
    Authentication Cheat Sheet). Accounts are stored hashed (SHA-256 of the case-folded
    name), never in clear. ``failure="closed"`` (default) refuses sign-in with
    :class:`~kit_auth.exceptions.BackendUnavailable` while the storage is down: failing
    open would reopen the brute-force window.

    The default policies are GCRA buckets: 5 failures per account and 20 per address in
    15 minutes, then one more attempt each 3 minutes (account) or 45 s (address).
    IPv6 addresses are grouped per ``/ipv6_prefix`` (default /64).

    Example::

        >>> lockout = LoginLockout()
        >>> for _ in range(5):
        ...     lockout.failed("alice@example.com", "192.0.2.1")
        >>> lockout.check("Alice@example.com", "198.51.100.7")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.RateLimited: Too many failed sign-in attempts; try again in 180 s (resetting the password stays possible).
        >>> lockout.succeeded("alice@example.com")
        >>> lockout.check("alice@example.com", "192.0.2.1")
    """

    def __init__(
        self,
        storage: RateLimitStorage | None = None,
        *,
        per_account: RateLimit | str = "5/15 minutes",
        per_address: RateLimit | str | None = "20/15 minutes",
        failure: FailurePolicy = "closed",
        key_prefix: str = "kit:lockout",
        ipv6_prefix: int | None = 64,
    ) -> None:
        if ipv6_prefix is not None and (
            type(ipv6_prefix) is not int or not 1 <= ipv6_prefix <= 128
        ):
            raise ConfigurationError(
                f"LoginLockout ipv6_prefix must be an integer 1..128 or None, got {ipv6_prefix!r}."
            )
        account_limit = RateLimit.coerce(per_account, name="login-account")
        self.account = RateLimiter(
            account_limit, storage=storage, key_prefix=key_prefix, failure=failure
        )
        self.address: RateLimiter | None = None
        if per_address is not None:
            address_limit = RateLimit.coerce(per_address, name="login-address")
            if address_limit.name == account_limit.name:
                raise ConfigurationError(
                    "LoginLockout per_account and per_address need different RateLimit names."
                )
            self.address = RateLimiter(
                address_limit, storage=self.account.storage, key_prefix=key_prefix, failure=failure
            )
        self._ipv6_prefix = ipv6_prefix

    def _keys(self, account: str, address: str | None) -> tuple[str, str | None]:
        if not isinstance(account, str) or not account.strip() or len(account) > _MAX_ACCOUNT:
            raise InvalidInput(
                f"The account must be a non-empty string of at most {_MAX_ACCOUNT} characters."
            )
        normalized = account.strip().casefold().encode("utf-8", "surrogatepass")
        account_key = "acct:" + hashlib.sha256(normalized).hexdigest()[:32]
        if address is not None and not isinstance(address, str):
            raise InvalidInput(
                f"The address must be a string or None, got {type(address).__name__}."
            )
        address_key = ip_key(address, ipv6_prefix=self._ipv6_prefix) if address else None
        return account_key, address_key

    @staticmethod
    def _locked(decisions: list[Decision]) -> None:
        refused = [d for d in decisions if not d.allowed]
        if not refused:
            return
        worst = max(refused, key=lambda d: d.retry_after)
        wait = max(math.ceil(worst.retry_after - 1e-6), 1)
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {wait} s (resetting the password "
            "stays possible).",
            retry_after=worst.retry_after,
            headers=worst.headers(),
        )

    def check(self, account: str, address: str | None = None) -> None:
        """Raise :class:`~kit_auth.exceptions.RateLimited` if the account or the address is
        locked; consumes nothing.

        Example::

            >>> LoginLockout().check("bob", "192.0.2.1")
        """
        account_key, address_key = self._keys(account, address)
        decisions = [self.account.peek(account_key)]
        if self.address is not None and address_key is not None:
            decisions.append(self.address.peek(address_key))
        self._locked(decisions)

    def failed(self, account: str, address: str | None = None) -> None:
        """Record a failed sign-in for the account and the address.

        Example::

            >>> LoginLockout(per_account="1/hour").failed("bob", "192.0.2.1")
        """
        account_key, address_key = self._keys(account, address)
        self.account.hit(account_key)
        if self.address is not None and address_key is not None:
            self.address.hit(address_key)

    def succeeded(self, account: str, address: str | None = None) -> None:
        """Clear the account's failures after a successful sign-in (the address keeps its
        count: one good password must not unlock spraying from that address).

        Example::

            >>> LoginLockout().succeeded("bob")
        """
        account_key, _ = self._keys(account, address)
        self.account.reset(account_key)

    async def acheck(self, account: str, address: str | None = None) -> None:
        """Async twin of :meth:`check`.

        Example::

            >>> import asyncio
            >>> asyncio.run(LoginLockout().acheck("bob", "192.0.2.1"))
        """
        account_key, address_key = self._keys(account, address)
        decisions = [await self.account.apeek(account_key)]
        if self.address is not None and address_key is not None:
            decisions.append(await self.address.apeek(address_key))
        self._locked(decisions)

    async def afailed(self, account: str, address: str | None = None) -> None:
        """Async twin of :meth:`failed`.

        Example::

            >>> import asyncio
            >>> asyncio.run(LoginLockout().afailed("bob", "192.0.2.1"))
        """
        account_key, address_key = self._keys(account, address)
        await self.account.ahit(account_key)
        if self.address is not None and address_key is not None:
            await self.address.ahit(address_key)

    async def asucceeded(self, account: str, address: str | None = None) -> None:
        """Async twin of :meth:`succeeded`.

        Example::

            >>> import asyncio
            >>> asyncio.run(LoginLockout().asucceeded("bob"))
        """
        account_key, _ = self._keys(account, address)
        await self.account.areset(account_key)
