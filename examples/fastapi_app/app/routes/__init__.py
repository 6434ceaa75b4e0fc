"""The routers, each built for one app from its dependencies.

These modules do not use ``from __future__ import annotations``: their endpoints are
annotated with types made inside the router functions, which FastAPI must see as objects.
"""
