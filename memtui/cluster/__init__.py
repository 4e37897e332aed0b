"""The cache job on a Dask distributed cluster, each worker guarded by memtui's memory core.

- ``settings.py``: Dask's own memory manager set as a backstop behind memtui's breaker, and why.
- ``plugin.py``: the worker side: a WorkerPlugin holding the model and a MemoryMonitor per worker;
  tasks call ``embed_domain``, which finds the plugin with ``get_worker()`` (the model is never shipped).
- ``engine.py``: the client side: ``ClusterRunner`` streams domains as tasks (bounded in flight),
  commits their vectors as they complete (the single writer of the cache), counts lost workers and
  quarantines a domain that killed workers twice.

``distributed`` is an extra (``pip install 'memtui[distributed]'``); nothing here loads without it.
"""


def require_distributed() -> None:
    """UsageError (exit 2) naming the extra when Dask distributed, or cryptography (the TLS of a local
    cluster: ``engine.py``), is not installed."""
    import importlib.util  # noqa: PLC0415

    from memtui.errors import UsageError  # noqa: PLC0415

    for module in ("distributed", "cryptography"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--workers / --scheduler need {module}: pip install 'memtui[distributed]'")
