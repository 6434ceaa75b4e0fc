"""kit-netcore: an XDP/eBPF packet shield for Python web backends: block, allow and
rate-limit sources at the NIC, steered from Python, with a userspace engine for machines
without XDP rights.

Example::

    >>> from kit_netcore import UserspaceShield
    >>> shield = UserspaceShield()
    >>> _ = shield.block("203.0.113.0/24", ttl=600)
    >>> shield.check("203.0.113.9", port=443).allowed
    False
"""

from __future__ import annotations

from ._rules import RateRule, Rule, SourceCount, Stats
from ._version import __version__
from .engine import Decision, UserspaceShield
from .exceptions import (
    BackendError,
    ClientBlocked,
    ClientRateLimited,
    ConfigurationError,
    InterfaceNotFound,
    InvalidRule,
    KitNetcoreError,
    NetcorePermissionError,
    ShieldFull,
    ShieldNotFound,
)
from .shield import Shield

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_netcore.flask / kit_netcore.fastapi.
__all__ = [
    "BackendError",
    "ClientBlocked",
    "ClientRateLimited",
    "ConfigurationError",
    "Decision",
    "InterfaceNotFound",
    "InvalidRule",
    "KitNetcoreError",
    "NetcorePermissionError",
    "RateRule",
    "Rule",
    "Shield",
    "ShieldFull",
    "ShieldNotFound",
    "SourceCount",
    "Stats",
    "UserspaceShield",
    "__version__",
]
