#!/usr/bin/env python3
"""Attachable runs: ``python bench/attach.py [--domains N] [--rounds R] [--json PATH]``.

Two figures, each from real processes and the real model, side by side in this one invocation:

* ``viewer_throughput_ratio``: a detached cache run's items/s (from its report) with 3 viewers
  attached (``memtui attach ID --json``, read as fast as they come) over the same run with none;
  rounds interleaved (0, 3, 0, 3, ...), each on a fresh cache; the ratio of the medians.
  Goal >= 0.97. Also ``viewers_cpu_s_per_run``: the CPU seconds the 3 viewers used together
  (their kernel accounting: unlike items/s, hardly moved by the machine's load).
* ``attach_first_frame_s``: from starting a viewer process to its first dashboard frame drawn
  (a headless Textual app over a RemoteEngine: interpreter start, imports, connect, hello, first
  snapshot, the dashboard mounted and its first tick done), median of ``--rounds`` tries against
  a running run (at least 3); ``attach_first_frame_cpu_s``: the CPU seconds that took (hardly
  moved by load). Also ``attach_json_first_snapshot_s``: ``memtui attach ID --json`` to its
  first snapshot line. Goal < 1 s. ``--rounds 0``: the first-frame figures alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "sample_data" / "generate.py"

FIRST_FRAME = r"""
import asyncio, sys, time
t0 = float(sys.argv[2])
from memtui.attach.client import RemoteEngine
from memtui.tui.attached import AttachedMemtuiApp

import memtui.tui.app

class Timed(AttachedMemtuiApp):
    CSS_PATH = str(__import__("pathlib").Path(memtui.tui.app.__file__).with_name("app.tcss"))
    first = None
    def tick(self, **kw):
        super().tick(**kw)
        if self.first is None:
            self.first = time.time() - t0
            self.cpu = time.process_time()  # this process's CPU since it started: interpreter, imports, first frame
            self.action_detach()

async def main():
    app = Timed(RemoteEngine(sys.argv[1]))
    async with app.run_test(size=(120, 40)) as pilot:
        while app.first is None:
            await pilot.pause(0.01)
    print(app.first, app.cpu)

asyncio.run(main())
"""


def env(run_dir: Path, cache: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MEMTUI_")}
    out.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MEMTUI_RUN_DIR=str(run_dir), MEMTUI_CACHE=str(cache))
    return out


def memtui(*args: str, e: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memtui", *args],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        **kw,
    )


def detach(input_path: Path, e: dict[str, str]) -> tuple[str, int]:
    done = memtui("run", "--input", str(input_path), "--detach", e=e, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"run --detach failed: {done.stderr}")
    words = done.stdout.split()
    return words[2], int(words[5].rstrip(","))


def wait_gone(pid: int, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, IndexError):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"run {pid} did not end")
        time.sleep(0.2)


def one_run(input_path: Path, work: Path, viewers: int, n: int) -> tuple[float, float]:
    """(items/s from the run's report, CPU seconds its viewers used together)."""
    run_dir = work / f"r{n}"
    run_dir.mkdir(mode=0o700)
    e = env(run_dir, work / f"cache{n}.sqlite")
    run_id, pid = detach(input_path, e)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "memtui", "attach", run_id, "--json"],
            env=e,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for _ in range(viewers)
    ]
    wait_gone(pid)
    cpu = 0.0
    for p in procs:
        _pid, _status, usage = os.wait4(p.pid, 0)  # the viewer's own CPU time, from the kernel
        p.returncode = 0
        cpu += usage.ru_utime + usage.ru_stime
    report = json.loads((run_dir / f"{run_id}.report.json").read_text())
    assert report["status"] == "success", report
    return float(report["items_per_s"]), cpu


def first_frames(input_path: Path, work: Path, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Per try: the TUI viewer's first frame (wall s), the CPU s it took, ``attach --json``'s first snapshot."""
    run_dir = work / "ff"
    run_dir.mkdir(mode=0o700)
    e = env(run_dir, work / "cache-ff.sqlite")
    run_id, pid = detach(input_path, e)
    sock = str(run_dir / f"{run_id}.sock")
    tui: list[float] = []
    tui_cpu: list[float] = []
    js: list[float] = []
    try:
        for _ in range(rounds):
            t0 = time.time()
            out = subprocess.run(
                [sys.executable, "-c", FIRST_FRAME, sock, repr(t0)],
                capture_output=True,
                text=True,
                env=e,
                cwd=ROOT,
                timeout=120,
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            wall, cpu = out.stdout.strip().splitlines()[-1].split()
            tui.append(float(wall))
            tui_cpu.append(float(cpu))
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "memtui", "attach", run_id, "--json"],
                env=e,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if '"kind":"snapshot"' in line:
                    js.append(time.monotonic() - t0)
                    break
            proc.kill()
            proc.wait()
    finally:
        memtui("stop", run_id, e=e, timeout=300)
        wait_gone(pid, 120)
    return tui, tui_cpu, js


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=40, help="domains in the generated input (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of 0 and 3 viewers (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="mtb", dir="/tmp"))  # short: a Unix socket path has 108 bytes
    try:
        input_path = work / "in.jsonl"
        subprocess.run(
            [
                sys.executable,
                str(GENERATE),
                "--out",
                str(input_path),
                "--domains",
                str(args.domains),
                "--seed",
                "7",
                "--quiet",
            ],
            check=True,
        )
        rates: dict[int, list[float]] = {0: [], 3: []}
        viewer_cpu: list[float] = []
        n = 0
        for r in range(args.rounds):
            for viewers in (0, 3) if r % 2 == 0 else (3, 0):
                n += 1
                rate, cpu = one_run(input_path, work, viewers, n)
                rates[viewers].append(rate)
                if viewers:
                    viewer_cpu.append(cpu)
                print(f"round {r + 1}: {viewers} viewer(s): {rate:.1f} items/s", file=sys.stderr, flush=True)
        tui, tui_cpu, js = first_frames(input_path, work, max(3, args.rounds))
        ratio = statistics.median(rates[3]) / statistics.median(rates[0]) if args.rounds else None
        result = {
            "domains": args.domains,
            "items_per_s_0_viewers": rates[0],
            "items_per_s_3_viewers": rates[3],
            "viewer_throughput_ratio": None if ratio is None else round(ratio, 3),
            "viewers_cpu_s_per_run": [round(x, 2) for x in viewer_cpu],
            "attach_first_frame_s": round(statistics.median(tui), 3),
            "attach_first_frame_s_all": [round(x, 3) for x in tui],
            "attach_first_frame_cpu_s": round(statistics.median(tui_cpu), 3),
            "attach_json_first_snapshot_s": round(statistics.median(js), 3),
            "cpus": os.cpu_count(),
            "nice": os.nice(0),
            "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
