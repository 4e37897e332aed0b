"""Input that is not a file, signals to a headless run, a terminal that goes away, whole log lines.

Real pipes (``cat``, ``gzip``), a real FIFO, real ptys and real signals to a
real memtui process with the real model. A run fed from a pipe must embed
every valid response (the input is read twice, which a pipe cannot give
without a spool); SIGHUP stops a headless run like SIGTERM (commit, report,
130) and so does the terminal going away; log lines from many threads never
run together.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memtui.errors import InputError
from memtui.faces.headless import setup_logging
from memtui.jobs.source import InputSource
from memtui.stdio import write_line
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import (
    Watched,
    cache_counts,
    controlling_tty_preexec,
    drain,
    error_lines,
    fill_up,
    killing,
    open_pty,
    tmpfs,
    wait_blocked_in_fifo_open,
)
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODELS = ("claude", "gpt-4o", "deepseek")


def write_mixed_input(path: Path, domains: int = 5, per_domain: int = 4) -> tuple[int, int]:
    """Valid lines, bad lines and repeated texts; returns (valid responses, distinct texts)."""
    valid, texts = 0, set()
    with path.open("w") as fh:
        fh.write("{not json\n")
        for d in range(domains):
            domain = f"pipe{d:02d}.example"
            for r in range(per_domain):
                text = f"{domain} says {r}: " + " ".join(f"t{d}_{r}_{k}" for k in range(10))
                fh.write(
                    json.dumps(
                        {
                            "id": f"{domain}-{r}",
                            "domain": domain,
                            "model": MODELS[r % 3],
                            "prompt_type": "trust",
                            "response": text,
                        }
                    )
                    + "\n"
                )
                valid += 1
                texts.add(text)
            # the same text again from another model: one vector, two responses
            fh.write(
                json.dumps(
                    {
                        "id": f"{domain}-again",
                        "domain": domain,
                        "model": "other",
                        "prompt_type": "trust",
                        "response": text,
                    }
                )
                + "\n"
            )
            valid += 1
            fh.write(json.dumps({"id": f"{domain}-bad", "domain": domain, "model": "x"}) + "\n")  # no response
    return valid, len(texts)


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, int, int]:
    path = tmp_path / "mixed.jsonl"
    valid, distinct = write_mixed_input(path)
    return path, valid, distinct


def run_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "memtui", "run", "--headless", *map(str, args)]


def assert_everything_cached(done_stdout: str, code: int, stderr: str, cache: Path, valid: int, distinct: int):
    assert code == 0, stderr
    assert "Traceback" not in stderr
    report = json.loads(done_stdout)
    assert report["status"] == "success", report
    assert report["items"] == valid and report["domains_done"] == report["domains_total"] == 5
    assert report["bad_lines"] == 6
    assert cache_counts(cache) == {"responses": valid, "embeddings": distinct, "domains": 5}
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        orphans = con.execute("SELECT count(*) FROM responses WHERE key NOT IN (SELECT key FROM embeddings)")
        assert orphans.fetchone()[0] == 0
    finally:
        con.close()
    return report


# -- input that is not a regular file ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_input_piped_from_cat_is_embedded_in_full(tmp_path, mixed, name):
    path, valid, distinct = mixed
    cache = tmp_path / "cache.sqlite"
    cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    done = subprocess.run(
        run_cmd("--input", name, "--cache", cache),
        stdin=cat.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        env=memtui_env(),
    )
    cat.stdout.close()
    cat.wait(30)
    report = assert_everything_cached(done.stdout, done.returncode, done.stderr, cache, valid, distinct)
    assert report["input"] == name


def test_a_gzip_stream_through_a_pipe_is_embedded_in_full(tmp_path, mixed):
    path, valid, distinct = mixed
    cache = tmp_path / "cache.sqlite"
    zipped = subprocess.Popen(["gzip", "-c", str(path)], stdout=subprocess.PIPE)
    done = subprocess.run(
        run_cmd("--input", "-", "--cache", cache),
        stdin=zipped.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        env=memtui_env(),
    )
    zipped.stdout.close()
    zipped.wait(30)
    assert_everything_cached(done.stdout, done.returncode, done.stderr, cache, valid, distinct)


def test_a_fifo_fed_by_a_writer_thread_is_embedded_in_full(tmp_path, mixed):
    path, valid, distinct = mixed
    cache = tmp_path / "cache.sqlite"
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    data = gzip.compress(path.read_bytes())  # and compressed, as zcat-less operators send it

    def feed() -> None:
        with open(fifo, "wb") as fh:  # waits for memtui to open the other end
            for i in range(0, len(data), 1000):
                fh.write(data[i : i + 1000])
                fh.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    done = subprocess.run(
        run_cmd("--input", fifo, "--cache", cache),
        capture_output=True,
        text=True,
        timeout=300,
        env=memtui_env(),
        stdin=subprocess.DEVNULL,
    )
    writer.join(10)
    assert not writer.is_alive()
    assert_everything_cached(done.stdout, done.returncode, done.stderr, cache, valid, distinct)


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_standard_input_on_a_terminal_is_refused(tmp_path, mixed, name):
    master, slave = open_pty()
    try:
        done = subprocess.run(
            run_cmd("--input", name, "--cache", tmp_path / "cache.sqlite"),
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=120,
            env=memtui_env(),
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 2, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "terminal" in errors[0] and "pipe" in errors[0], done.stderr
    assert not (tmp_path / "cache.sqlite").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "mixed.jsonl"]


def test_input_source_refuses_a_terminal_on_stdin(monkeypatch):
    master, slave = open_pty()
    try:
        with os.fdopen(os.dup(slave), "r") as tty:
            monkeypatch.setattr(sys, "stdin", tty)
            with pytest.raises(InputError, match="terminal"):
                InputSource.open("-")
    finally:
        os.close(slave)
        os.close(master)


def wait_catching(pid: int, sig: int, timeout: float = 60) -> None:
    """Until the process has a handler for ``sig`` (its SigCgt mask in /proc/PID/status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (sig - 1)):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never caught signal {sig}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_while_waiting_for_a_fifo_writer_ends_promptly_without_a_traceback(tmp_path, sig):
    """Before any face runs (the FIFO waits for a writer), SIGTERM and SIGHUP end memtui as Ctrl-C does."""
    cache = tmp_path / "cache.sqlite"
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    w = Watched(["run", "--headless", "--input", fifo, "--cache", cache])
    with killing(w):
        wait_catching(w.pid, sig)  # main() has begun (a wchan of "pipe" can also be the interpreter starting)
        wait_blocked_in_fifo_open(w.pid)
        sent = time.monotonic()
        w.proc.send_signal(sig)
        code = w.wait(30)
        took = time.monotonic() - sent
    assert code == 130, w.stderr
    assert took < 5, took
    assert "Traceback" not in w.stderr and "interrupted" in w.stderr, w.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fifo"]  # no cache, no lock file left


def test_a_full_spool_disk_for_piped_input_is_exit_1_saying_disk_full(tmp_path):
    inp = write_input(tmp_path / "in.jsonl", 40, 40, words=60)  # ~1 MB: more than the disk holds
    with tmpfs(tmp_path / "spool", "256k") as spool:
        filler = fill_up(spool)
        # Room for Python's probe of TMPDIR (a full one it silently swaps for /tmp), not for the input.
        os.truncate(filler, filler.stat().st_size - 16 * 1024)
        with inp.open("rb") as stdin:
            done = subprocess.run(
                run_cmd("--input", "-", "--cache", tmp_path / "cache.sqlite"),
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=120,
                env=memtui_env(TMPDIR=str(spool)),
            )
        assert sorted(p.name for p in spool.iterdir()) == ["filler"]
    assert done.returncode == 1, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "disk full" in errors[0] and "TMPDIR" in errors[0], done.stderr
    assert not (tmp_path / "cache.sqlite").exists()


# -- signals to a headless run -------------------------------------------------------------------------

DOMAINS, PER_DOMAIN = 40, 6


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_hangup_stops_a_headless_run_like_sigterm_and_a_rerun_completes(tmp_path, sig):
    inp = write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN)
    cache = tmp_path / "cache.sqlite"
    report_file = tmp_path / "report.json"
    w = Watched(["run", "--headless", "--input", inp, "--cache", cache, "--batch-max", "1", "--report", report_file])
    with killing(w):
        w.wait_for("Batch 3 committed")
        w.proc.send_signal(sig)
        if sig == signal.SIGHUP:  # a hangup often comes twice: the second must not cut the report short
            time.sleep(0.05)
            w.proc.send_signal(sig)
        code = w.wait(60)

    assert code == 130, w.stderr
    assert "Traceback" not in w.stderr
    report = json.loads(w.stdout)
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert json.loads(report_file.read_text()) == report
    assert 3 <= report["domains_done"] < DOMAINS
    counts = cache_counts(cache)
    assert counts["domains"] == report["domains_done"]
    assert counts["embeddings"] == report["items_embedded"]  # every vector it counts is in the cache
    assert counts["responses"] >= report["items"] == report["domains_done"] * PER_DOMAIN

    again = memtui("run", "--headless", "--input", inp, "--cache", cache)
    assert again.returncode == 0, again.stderr
    rest = json.loads(again.stdout)
    assert rest["status"] == "success" and "previous_abnormal_end" not in rest
    assert rest["items_skipped"] == report["items"]
    assert rest["items_embedded"] == DOMAINS * PER_DOMAIN - report["items_embedded"]  # nothing embedded twice
    assert cache_counts(cache) == {
        "embeddings": DOMAINS * PER_DOMAIN,
        "responses": DOMAINS * PER_DOMAIN,
        "domains": DOMAINS,
    }


def test_a_terminal_that_goes_away_ends_a_headless_run_with_its_report(tmp_path):
    inp = write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN)
    cache = tmp_path / "cache.sqlite"
    report_file = tmp_path / "report.json"
    master, slave = open_pty()
    seen: list[bytes] = []
    stop = threading.Event()
    reader = drain(master, stop, seen)
    proc = subprocess.Popen(
        run_cmd("--input", inp, "--cache", cache, "--batch-max", "1", "--report", report_file),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=memtui_env(),
        preexec_fn=controlling_tty_preexec(slave),
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 120
        while b"Batch 3 committed" not in b"".join(seen):
            assert proc.poll() is None, b"".join(seen).decode(errors="replace")
            assert time.monotonic() < deadline, b"".join(seen).decode(errors="replace")
            time.sleep(0.05)
        stop.set()
        reader.join(5)
        closed = time.monotonic()
        os.close(master)  # the terminal goes away
        code = proc.wait(30)
        took = time.monotonic() - closed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130
    assert took < 15, took
    report = json.loads(report_file.read_text())
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert cache_counts(cache)["embeddings"] == report["items_embedded"]


def test_a_reader_that_leaves_the_pipe_does_not_change_the_exit(tmp_path):
    inp = write_input(tmp_path / "in.jsonl", 3, 3)
    cache = tmp_path / "cache.sqlite"
    proc = subprocess.Popen(
        run_cmd("--input", inp, "--cache", cache, "--report", tmp_path / "r.json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=memtui_env(),
        stdin=subprocess.DEVNULL,
    )
    proc.stdout.close()  # `memtui run | head -0`: nobody reads the JSON report
    err = proc.stderr.read().decode()
    code = proc.wait(300)
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "success"


# -- whole lines ----------------------------------------------------------------------------------------


class SlowStream(io.TextIOBase):
    """A stream whose write takes its time and lands in two pieces, as a slow terminal or pipe may."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def write(self, text: str) -> int:
        half = len(text) // 2
        self.pieces.append(text[:half])
        time.sleep(0.0002)
        self.pieces.append(text[half:])
        return len(text)

    def flush(self) -> None:
        time.sleep(0.0001)


def test_log_lines_and_output_lines_from_many_threads_never_run_together():
    stream = SlowStream()
    handler = setup_logging(stream)
    log = logging.getLogger("memtui")
    threads_each, per_thread = 6, 60
    barrier = threading.Barrier(2 * threads_each)

    def by_write_line(t: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            write_line(stream, f"W{t}:{n}:" + "x" * (n % 17) + ":end")

    def by_logging(t: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            log.info(f"L{t}:{n}:" + "y" * (n % 13) + ":end")

    threads = [threading.Thread(target=f, args=(t,)) for t in range(threads_each) for f in (by_write_line, by_logging)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        log.removeHandler(handler)
    lines = "".join(stream.pieces).split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    whole = re.compile(r"^(W\d+:\d+:x*|INFO:memtui:L\d+:\d+:y*):end$")
    broken = [line for line in lines if not whole.match(line)]
    assert not broken, broken[:5]
    assert len(lines) == 2 * threads_each * per_thread
    assert len(set(lines)) == len(lines)
