import contextlib
import ctypes.util
import gc
import logging
import sys

import pytest

from memtui.memory.cleanup import Cleaner, CleanupReport, malloc_trim
from memtui.memory.units import GB

from .fakes import FakeClock, ScriptedProbe, gb


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def make_cycles(n: int) -> None:
    for _ in range(n):
        Node()


@contextlib.contextmanager
def gc_paused():
    """Keep the automatic collector from freeing the cycles before the cleanup does."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def test_report_before_after_and_freed():
    probe = ScriptedProbe(script=[gb(1.2), gb(0.94)])
    report = Cleaner(probe, clock=FakeClock()).run("breaker warning")
    assert (report.rss_before, report.rss_after) == (gb(1.2), gb(0.94))
    assert report.freed == gb(1.2) - gb(0.94)
    assert report.reason == "breaker warning"
    assert report.message == f"Cleanup: {report.objects} objects collected, now 0.94GB"
    assert report.describe().startswith(f"{report.objects} objects, 1.20GB -> 0.94GB (freed 266MB)")


def test_message_in_the_guides_words():
    report = CleanupReport(
        objects=1247, rss_before=gb(1.12), rss_after=gb(0.94), trimmed=True, cleared=("model",), duration_s=0.01
    )
    assert report.message == "Cleanup: 1247 objects collected, now 0.94GB"
    assert report.describe().endswith(", cleared model")


def test_collects_cyclic_garbage():
    with gc_paused():
        make_cycles(2000)
        report = Cleaner(ScriptedProbe(rss=GB)).run()
        again = Cleaner(ScriptedProbe(rss=GB)).run()
    assert report.objects >= 2000
    assert again.objects < 100


def test_clearers_run_in_order_before_collection():
    order = []
    cleaner = Cleaner(ScriptedProbe(rss=GB))
    cleaner.register("embedding model", lambda: order.append("model"))
    cleaner.register("tokenizer", lambda: order.append("tok"))
    report = cleaner.run()
    assert order == ["model", "tok"]
    assert report.cleared == ("embedding model", "tokenizer")


def test_clearer_garbage_is_collected_in_the_same_cleanup():
    cache = {"x": None}

    def clear():
        make_cycles(500)  # what a cache drop leaves behind: cycles no longer referenced
        cache.clear()

    cleaner = Cleaner(ScriptedProbe(rss=GB))
    cleaner.register("cache", clear)
    with gc_paused():
        assert cleaner.run().objects >= 500


def test_failing_clearer_is_logged_and_skipped(caplog):
    ran = []
    cleaner = Cleaner(ScriptedProbe(rss=GB))
    cleaner.register("broken", lambda: 1 / 0)
    cleaner.register("fine", lambda: ran.append(1))
    with caplog.at_level(logging.WARNING, logger="memtui"):
        report = cleaner.run()
    assert report.cleared == ("fine",) and ran == [1]
    assert "cache clearer broken failed" in caplog.text


def test_unregister_and_skip_caches():
    ran = []
    cleaner = Cleaner(ScriptedProbe(rss=GB))
    cleaner.register("a", lambda: ran.append("a"))
    assert cleaner.run(clear_caches=False).cleared == () and ran == []
    cleaner.unregister("a")
    cleaner.unregister("a")
    assert cleaner.run().cleared == () and ran == []


def test_register_replaces_by_name():
    ran = []
    cleaner = Cleaner(ScriptedProbe(rss=GB))
    cleaner.register("model", lambda: ran.append(1))
    cleaner.register("model", lambda: ran.append(2))
    cleaner.run()
    assert ran == [2]


def test_duration_uses_the_clock():
    clock = FakeClock()

    class SlowProbe:
        def rss_bytes(self):
            clock.advance(0.25)
            return GB

    assert Cleaner(SlowProbe(), clock=clock).run().duration_s == pytest.approx(0.5)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None, reason="malloc_trim is glibc's"
)
def test_malloc_trim_available_on_glibc():
    assert malloc_trim() is True


def test_collect_and_trim_are_injectable():
    report = Cleaner(ScriptedProbe(rss=GB), collect=lambda: 42, trim=lambda: False).run()
    assert (report.objects, report.trimmed) == (42, False)


def test_a_cleanup_that_freed_a_little_less_than_nothing_says_0mb_not_minus_0():
    from memtui.memory.cleanup import CleanupReport
    from memtui.memory.units import GB

    report = CleanupReport(objects=1, rss_before=GB, rss_after=GB + 1000, trimmed=True, cleared=(), duration_s=0.1)
    assert "(freed 0MB)" in report.describe()
