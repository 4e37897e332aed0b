"""An attached viewer says it is one (its header names the run) and keeps its own key d visible, at 80 and
60 columns; the backend is named at 80 columns (header, summary, log)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from memtui.attach.client import RemoteEngine
from memtui.attach.server import AttachServer
from memtui.tui.widgets.run_header import RunHeader, title_parts
from tests.test_attach_server import make_runner, run_dir  # noqa: F401 - the fixture

from .conftest import screen_lines, wait_for


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_a_viewer_names_its_run_and_shows_d(size, tmp_path, run_dir):  # noqa: F811
    from memtui.tui.attached import AttachedMemtuiApp

    gate = threading.Event()
    runner = make_runner(tmp_path, domains=4, gate=gate)  # held in its first batch
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.2).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    try:
        remote = RemoteEngine(str(server.socket_path))
        app = AttachedMemtuiApp(remote, poll_interval=0.05)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.last is not None, what="the first frame")
            await wait_for(pilot, lambda: "q Quit" in screen_lines(app)[-1], what="the footer")
            lines = screen_lines(app)
            assert f"viewer of run {remote.run_id}" in lines[0], lines[0]
            assert "d Detach" in lines[-1] and "q Quit" in lines[-1], "\n".join(lines)
            await pilot.press("d")
    finally:
        gate.set()
        runner.stop()
        worker.join(30)
        server.finish(runner.snapshot().report)


async def test_a_viewer_whose_run_is_lost_says_so_at_once(tmp_path, run_dir):  # noqa: F811
    from memtui.tui.attached import AttachedMemtuiApp

    gate = threading.Event()
    runner = make_runner(tmp_path, domains=4, gate=gate)
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.2).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    try:
        app = AttachedMemtuiApp(RemoteEngine(str(server.socket_path)), poll_interval=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "RUNNING" in screen_lines(app)[0], what="the run's frame")
            server.finish(None)  # the connection goes without a report, as when the run is killed
            await wait_for(pilot, lambda: app.lost is not None, what="the viewer to see the loss")
            await pilot.pause()
            header = screen_lines(app)[0]
            assert "RUN LOST" in header and "RUNNING" not in header, header
    finally:
        gate.set()
        runner.stop()
        worker.join(30)


def test_the_backend_is_named_at_80_columns(make_rig):
    rig = make_rig(domains=2)
    s = dataclasses.replace(
        rig.runner.snapshot(),
        model="sentence-transformers/all-MiniLM-L6-v2",
        backend="onnx-int8/r3/avx512_vnni",
        input="/srv/data/very/long/path/to/the/responses-2026-12-07.jsonl.gz",
        cache="/var/lib/memtui/a/long/path/embeddings.sqlite",
    )
    width = 80 - 2 - len("● RUNNING") - 2
    inp, cache, model = title_parts(s, width)
    assert model.endswith("onnx-int8"), (inp, cache, model)
    assert len("memtui ") + len(s.mode) + 5 + len(inp) + 3 + len(cache) + 5 + len(model) <= width
    assert RunHeader  # the widget that draws these parts


def test_the_summary_names_the_backend_and_the_end_line_the_committed_count(make_rig):
    from memtui.events import RunFinished

    rig = make_rig(domains=2)
    report = dataclasses.replace(
        rig.runner.run(), status="aborted", items=0, responses_committed=17, backend="onnx-int8/r3/avx512_vnni"
    )
    assert report.summary_lines()[0].startswith("Run aborted (cache, onnx-int8): 17 responses committed")
    assert RunFinished(report).message.startswith("🏁 Run aborted: 17 responses")
    limited = dataclasses.replace(report, limit_gb=0.781, limit_source="cgroup")
    assert any("Memory limit 0.78GB" in line for line in limited.summary_lines())  # as the panel says it
