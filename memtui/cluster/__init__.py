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
    """UsageError (exit 2) naming the extra when Dask distributed is not installed."""
    import importlib.util  # noqa: PLC0415

    from memtui.errors import UsageError  # noqa: PLC0415

    if importlib.util.find_spec("distributed") is None:
        raise UsageError("--workers / --scheduler need Dask distributed: pip install 'memtui[distributed]'")
