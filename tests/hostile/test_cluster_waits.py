"""The cluster's waits an operator (or the suite) may set from the environment: a bad value is one line,
exit 2, before any connect (``memtui/env_seconds.py``, the rule ``MEMTUI_DETACH_TIMEOUT`` follows too).

In-process, with no cluster: ``ClusterRunner`` reads them when it is built and connects only in ``run()``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from tests.support.inputs import write_input


@pytest.mark.parametrize("name", ["MEMTUI_WORKER_WAIT", "MEMTUI_NO_WORKERS_WAIT", "MEMTUI_PROBE_WAIT"])
@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf", "1e9"])
def test_a_bad_cluster_wait_is_a_usage_error_naming_the_variable(tmp_path, monkeypatch, name, value):
    from memtui.cluster.engine import ClusterRunner
    from memtui.errors import ConfigError
    from memtui.jobs.cache import CacheJob
    from memtui.memory import MemoryConfig, MemoryMonitor
    from tests.support.executors import FakeExecutor

    job = CacheJob(
        write_input(tmp_path / "in.jsonl", domains=1, per_domain=1),
        tmp_path / "c.sqlite",
        FakeExecutor(),
        model_id="fake",
    )
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name}=.* is not a number of seconds above 0; set it like") as caught:
        ClusterRunner(job, MemoryMonitor(MemoryConfig()), scheduler="tcp://127.0.0.1:1")  # connects only in run()
    assert caught.value.exit_code == 2
    monkeypatch.setenv(name, "2.5")
    runner = ClusterRunner(job, MemoryMonitor(MemoryConfig()), scheduler="tcp://127.0.0.1:1")
    assert 2.5 in (runner._worker_wait_s, runner._no_workers_s, runner._probe_s)
