"""The backends: ``sync`` (inline), ``thread`` (a pool in this process), ``rq`` (Redis)."""
