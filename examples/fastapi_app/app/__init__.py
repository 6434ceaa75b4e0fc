"""A small multi-tenant projects API composed from the kit packages.

``app.main:app`` is the ASGI application (``uvicorn app.main:app``); ``app.worker:jobs``
is what ``kit-jobs --app app.worker:jobs worker`` runs when jobs go to Redis (RQ).
"""
