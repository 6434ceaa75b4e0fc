"""kit-name: <REPLACE ME: one line saying what the package does>.

Example::

    >>> import kit_name
    >>> kit_name.__version__
    '0.1.0'
"""

from __future__ import annotations

from ._version import __version__
from .exceptions import ConfigurationError, KitNameError

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_name.flask / kit_name.fastapi.
__all__ = [
    "ConfigurationError",
    "KitNameError",
    "__version__",
]
