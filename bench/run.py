#!/usr/bin/env python3
"""memtui benchmarks: ``python bench/run.py [--quick | --smoke] [--json PATH]``.

Every comparison runs side by side in this one invocation (the machines are
shared and noisy) and is quoted as a ratio or a figure from the same run.
Each case runs in its own subprocess (bench/child.py), so every peak is that
process's own VmHWM. See BENCHMARKS.md for what each figure means.

  (default)  the whole bundled sample (444 domains, 16,350 responses): hours on 2 busy cores
  --quick    a subset, a few minutes on 2 idle cores (``make bench``)
  --smoke    the smallest quick case, for CI: checks the harness, not the numbers
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHILD = Path(__file__).resolve().parent / "child.py"
GENERATE = ROOT / "sample_data" / "generate.py"
SAMPLE = ROOT / "sample_data" / "responses.jsonl.gz"
GB = 1 << 30
MB = 1 << 20
LONG_WORDS = 1000


@dataclass(frozen=True)
class Profile:
    name: str
    base_domains: int  # the data of the memory cases (generate.py --domains)
    base_responses: int | None
    tp_domains: int  # first N domains of the base for the throughput pair
    repeats: int  # interleaved memtui/peer pairs
    batch_sizes: str  # the peer's batch sizes tried (its best is kept)
    factors: tuple[int, ...]  # scaling: copies of the base
    memtui_cap_s: float  # time cap of the memtui runs at factors > 1
    naive_cap_s: float  # time cap of the naive encode (all factors)
    long_texts: int  # long texts for the latency case
    trials: int  # pauses measured
    resume_runs: int
    sampler_window_s: float  # CPU of an idle process with and without the sampler, over this long
    parallel_memory: bool  # run the memory cases at once (smoke only: its figures are not quoted)


PROFILES = {
    "smoke": Profile("smoke", 2, 18, 2, 1, "32", (1, 2), 15, 8, 320, 1, 1, 1.0, True),
    "quick": Profile("quick", 20, None, 4, 2, "16,32,64", (1, 4, 16), 45, 25, 320, 3, 3, 4.0, False),
    "full": Profile("full", 444, None, 444, 1, "16,32,64,128", (1, 4, 16), 300, 90, 320, 5, 3, 4.0, False),
}


# -- machine and load --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gb": round(mem / GB, 1),
        "python": platform.python_version(),
        "commit": commit,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "PASSIVE (set for every case)"),
    }


class Log:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.loads: list[float] = []

    def __call__(self, text: str) -> None:
        self.loads.append(os.getloadavg()[0])
        if not self.quiet:
            print(
                f"[{time.monotonic() - self.t0:6.0f}s load {os.getloadavg()[0]:4.1f}] {text}",
                file=sys.stderr,
                flush=True,
            )


# -- data --------------------------------------------------------------------------------------


def generate(out: Path, domains: int, scale: int = 1, responses: int | None = None) -> Path:
    if out.exists():
        return out
    cmd = [
        sys.executable,
        str(GENERATE),
        "--out",
        str(out),
        "--domains",
        str(domains),
        "--scale",
        str(scale),
        "--quiet",
    ]
    if responses is not None:
        cmd += ["--responses", str(responses)]
    subprocess.run(cmd, check=True)
    return out


def first_domains(src: Path, out: Path, n: int) -> Path:
    """The first n domains of a JSON Lines input, as plain JSON Lines."""
    seen: list[str] = []
    with gzip.open(src, "rt", encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as dst:
        for line in fh:
            domain = json.loads(line)["domain"]
            if not seen or seen[-1] != domain:
                if len(seen) == n:
                    break
                seen.append(domain)
            dst.write(line)
    return out


def long_texts(out: Path, n: int, per_domain: int = 32) -> Path:
    """n of the bundled sample's answers over 1,000 words, regrouped 32 to a domain."""
    rows = []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if len(rec["response"].split()) > LONG_WORDS:
                rows.append(rec)
                if len(rows) == n:
                    break
    with open(out, "w", encoding="utf-8") as dst:
        for i, rec in enumerate(rows):
            rec = {**rec, "domain": f"long-{i // per_domain:03d}.example"}
            dst.write(json.dumps(rec) + "\n")
    return out


def count_lines(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for _ in fh)


# -- children ----------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # memtui's Embedder sets this itself; the peer and naive scripts get it too so the pair differs only in batching.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Child:
    """One bench case in its own process; ``result()`` waits for its JSON line."""

    def __init__(self, role: str, *args: str, timeout: float = 4 * 3600) -> None:
        self.role, self.timeout, self.t0 = role, timeout, time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), role, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"bench case {self.role} failed (exit {self.proc.returncode}):\n{err[-3000:]}")
        result = json.loads(lines[-1])
        result["process_wall_s"] = round(time.monotonic() - self.t0, 3)
        return result


def run_child(role: str, *args: str, timeout: float = 4 * 3600) -> dict[str, Any]:
    return Child(role, *args, timeout=timeout).result()


# -- the sampler's cost (in this process: it never imports torch) --------------------------------


def sampler_cost(window: float = 4.0) -> dict[str, Any]:
    from memtui.memory.config import MemoryConfig
    from memtui.memory.monitor import MemoryMonitor
    from memtui.memory.probe import ProcessProbe

    probe = ProcessProbe()
    n = 20000
    best_probe = best_sample = float("inf")
    monitor = MemoryMonitor(MemoryConfig())
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            probe.rss_bytes()
        best_probe = min(best_probe, (time.perf_counter() - t) / n)
        t = time.perf_counter()
        for _ in range(n // 4):
            monitor.sample()
        best_sample = min(best_sample, (time.perf_counter() - t) / (n // 4))

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    c0 = cpu()
    time.sleep(window)
    idle = cpu() - c0
    running = MemoryMonitor(MemoryConfig())
    running.start()
    c0 = cpu()
    time.sleep(window)
    busy = cpu() - c0
    samples = running.snapshot().samples
    running.stop()
    interval = MemoryConfig().sample_interval_s
    return {
        "probe_us": best_probe * 1e6,
        "monitor_sample_us": best_sample * 1e6,
        "interval_s": interval,
        "sampler_cpu_share_measured": max(0.0, busy - idle) / window,
        "samples_in_window": samples,
        "sampler_cpu_share_from_cost": best_sample / interval,
    }


# -- the resume case: a rerun over a complete cache, through the CLI -----------------------------


def resume_runs(input_path: Path, cache: Path, work: Path, runs: int) -> dict[str, Any]:
    walls, reports, loaded = [], [], []
    for i in range(runs):
        report_path = work / f"resume-{i}.json"
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "memtui",
                "run",
                "--headless",
                "--input",
                str(input_path),
                "--cache",
                str(cache),
                "--report",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=ROOT,
            timeout=600,
        )
        walls.append(time.monotonic() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"resume run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        reports.append(json.loads(report_path.read_text()))
        loaded.append("Model loaded" in proc.stderr)
    return {
        "wall_s": walls,
        "median_s": statistics.median(walls),
        "model_loaded": any(loaded),
        "items_embedded": max(r["items_embedded"] for r in reports),
        "report_duration_s": statistics.median(r["duration_s"] for r in reports),
    }


# -- backends: the int8 accuracy gate and speed ----------------------------------------------------

GATE = {"int8_cosine_mean": 0.99, "int8_cosine_p1": 0.98, "int8_knn_overlap": 0.95}
GATE_TEXTS = {"smoke": 40, "quick": 2000, "full": None}  # distinct texts of the sample; None: all of them


def gate_texts(n: int | None) -> list[str]:
    """The bundled sample's first n distinct texts, in file order (all of them for None)."""
    seen: dict[str, None] = {}
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            seen.setdefault(json.loads(line)["response"])
            if n is not None and len(seen) >= n:
                break
    return list(seen)


def backend_figures(prof: Profile, work: Path, tp_input: Path, log: Log) -> dict[str, Any]:
    """The gate: onnx-int8 against torch fp32 on the same texts (each in its own process: peak RSS is its
    own VmHWM, the int8 one never imports torch); then the speed pairs through memtui (child ``backends``)."""
    import numpy as np

    from memtui.jobs.tune import cosines, knn_overlap

    texts = gate_texts(GATE_TEXTS[prof.name])
    texts_file = work / "gate-texts.json"
    texts_file.write_text(json.dumps(texts))
    runs: dict[str, dict[str, Any]] = {}
    for backend in ("onnx-int8", "torch"):  # int8 first: a missing export is made (and timed) here
        log(f"accuracy gate: {backend} on {len(texts)} distinct texts of the sample")
        out = work / f"gate-{backend}.npy"
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "memtui.jobs.tune",
                "--child",
                backend,
                "--texts",
                str(texts_file),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=ROOT,
            timeout=6 * 3600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"gate child {backend} failed: {proc.stderr[-2000:]}")
        runs[backend] = {
            **json.loads(proc.stdout.strip().splitlines()[-1]),
            "process_wall_s": round(time.monotonic() - t0, 2),
        }
    vec = np.load(work / "gate-onnx-int8.npy")
    ref = np.load(work / "gate-torch.npy").astype(np.float64)
    cos = cosines(vec, ref)
    knn = knn_overlap(vec, ref)
    log(f"speed: onnx-int8 vs torch through memtui, and vs plain encode, {count_lines(tp_input)} texts")
    speed = run_child(
        "backends",
        "--input",
        str(tp_input),
        "--workdir",
        str(work),
        "--repeats",
        str(max(prof.repeats, 2) if prof.name != "smoke" else 1),
        "--batch-sizes",
        prof.batch_sizes,
    )
    from memtui.embed.artifacts import artifact_dir
    from memtui.embed.model import _packaged_model_path

    export = json.loads((artifact_dir(_packaged_model_path()) / "export.json").read_text())
    return {
        "backend_speedup": speed["backend_speedup"],
        "int8_throughput_ratio": speed["int8_throughput_ratio"],
        "int8_cosine_mean": cos["cosine_mean"],
        "int8_cosine_p1": cos["cosine_p1"],
        "int8_cosine_min": cos["cosine_min"],
        "int8_knn_overlap": knn,
        "int8_peak_rss_gb": runs["onnx-int8"]["peak_rss_bytes"] / GB,
        "torch_peak_rss_gb": runs["torch"]["peak_rss_bytes"] / GB,
        "gate_texts": len(texts),
        "gate_passed": cos["cosine_mean"] >= GATE["int8_cosine_mean"]
        and cos["cosine_p1"] >= GATE["int8_cosine_p1"]
        and knn >= GATE["int8_knn_overlap"],
        "details": {"gate_runs": runs, "speed": speed, "export": export},
    }


def backend_table(b: dict[str, Any]) -> str:
    sp = b["details"]["speed"]
    runs = b["details"]["gate_runs"]
    rows = [
        (
            "backend_speedup (onnx-int8 / torch, both through memtui)",
            f"{b['backend_speedup']:.3f}",
            ">= 2.0",
            f"{sp['int8_items_per_s']:.2f} vs {sp['torch_items_per_s']:.2f} texts/s, {sp['texts']} texts, median of "
            f"{len(sp['repeats'])} interleaved pair(s)",
        ),
        (
            "int8_throughput_ratio (memtui int8 / best plain encode)",
            f"{b['int8_throughput_ratio']:.3f}",
            ">= 2.0",
            f"peer bs {sp['peer_best_batch_size']}; torch through memtui: {sp['torch_throughput_ratio']:.3f}",
        ),
        (
            "int8_cosine_mean (per text, to torch fp32)",
            f"{b['int8_cosine_mean']:.4f}",
            ">= 0.99",
            f"{b['gate_texts']} distinct texts of the sample; min {b['int8_cosine_min']:.4f}",
        ),
        ("int8_cosine_p1 (1st percentile)", f"{b['int8_cosine_p1']:.4f}", ">= 0.98", ""),
        (
            "int8_knn_overlap (top-10 neighbours)",
            f"{b['int8_knn_overlap']:.4f}",
            ">= 0.95",
            "gate " + ("PASSED" if b["gate_passed"] else "FAILED"),
        ),
        (
            "int8_peak_rss_gb / torch_peak_rss_gb (encode the gate texts)",
            f"{b['int8_peak_rss_gb']:.3f} / {b['torch_peak_rss_gb']:.3f}",
            "int8 <= torch",
            f"texts/s there: {runs['onnx-int8']['texts_per_s']:.1f} vs {runs['torch']['texts_per_s']:.1f}; "
            f"torch imported by int8: {runs['onnx-int8']['torch_imported']}",
        ),
        (
            "int8 export (once per model)",
            f"{sum(b['details']['export']['seconds'].values()):.1f} s",
            "",
            ", ".join(f"{k} {v:.1f}s" for k, v in b["details"]["export"]["seconds"].items()),
        ),
    ]
    out = ["| figure | value | goal | notes |", "|---|---|---|---|"]
    out += [f"| {a} | {v} | {g} | {n} |" for a, v, g, n in rows]
    return "\n".join(out)


def backends_only(prof: Profile, work: Path, log: Log, json_path: Path | None) -> int:
    base = (
        SAMPLE
        if prof.name == "full"
        else generate(work / "base-x1.jsonl.gz", prof.base_domains, 1, prof.base_responses)
    )
    tp_input = first_domains(base, work / "throughput.jsonl", prof.tp_domains)
    started = time.time()
    b = backend_figures(prof, work, tp_input, log)
    mach = machine()
    loads = log.loads + [os.getloadavg()[0]]
    print(
        f"memtui bench backends ({prof.name}) at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}, "
        f"{time.time() - started:.0f}s, commit {mach['commit']}"
    )
    print(
        f"machine: {mach['nproc']} cores, {mach['cpu']}; load average (1 min) during the run "
        f"{min(loads):.1f}..{max(loads):.1f} (median {statistics.median(loads):.1f})"
    )
    print()
    print(backend_table(b))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({**b, "machine": mach, "load1": loads}, indent=2) + "\n")
    return 0 if b["gate_passed"] else 1


# -- the chart ---------------------------------------------------------------------------------


def scaling_chart(scaling: dict[str, Any]) -> str:
    try:
        import plotext as plt
    except ImportError:
        return "(plotext not installed: no chart)"
    plt.clear_figure()
    plt.theme("clear")
    xs = list(range(len(scaling["factors"])))  # evenly spaced: 1x, 4x, 16x
    plt.plot(xs, scaling["naive_gb"], label="naive: all at once, encode bs 256", marker="x")
    plt.plot(xs, scaling["memtui_gb"], label="memtui: default thresholds", marker="o")
    plt.xticks(xs, [f"{f}x ({n} texts)" for f, n in zip(scaling["factors"], scaling["texts"])])
    plt.title("Peak RSS (VmHWM, GB) vs data size")
    plt.ylim(0, max([*scaling["naive_gb"], *scaling["memtui_gb"]]) * 1.15)
    plt.plotsize(76, 18)
    return plt.uncolorize(plt.build())


# -- the table ---------------------------------------------------------------------------------


def table(fig: dict[str, Any]) -> str:
    s, d = fig["scaling"], fig["details"]
    tp, lat = d["throughput"], d["latency"]
    fmt = lambda v, spec=".3f": "n/a" if v is None else format(v, spec)  # noqa: E731
    rows = [
        (
            "throughput_ratio (memtui / best plain encode)",
            fmt(fig["throughput_ratio"]),
            ">= 1.0",
            f"{tp['memtui_items_per_s']:.2f} vs {tp['peer_items_per_s']:.2f} texts/s (peer bs {tp['peer_best_batch_size']}), "
            f"{tp['texts']} texts, median of {len(tp['repeats'])} interleaved pair(s)",
        ),
        (
            "peak_rss_gb (memtui, default thresholds)",
            fmt(fig["peak_rss_gb"]),
            "<= 1.2",
            f"VmHWM; {d['memtui']['report']['items']} texts, {d['memtui']['report']['domains_done']} domains",
        ),
        (
            "naive_peak_rss_gb (all at once, encode bs 256)",
            fmt(fig["naive_peak_rss_gb"]),
            "",
            f"VmHWM; {d['naive']['texts']} texts, ended by {d['naive']['ended']}",
        ),
        (
            "drift_mb (RSS after domain A vs after the last)",
            fmt(fig["drift_mb"], ".1f"),
            "< 50",
            f"domains {d['drift']['from_domains']} -> {d['drift']['to_domains']}",
        ),
        (
            "scaling memtui GB at " + "/".join(f"{f}x" for f in s["factors"]),
            " / ".join(fmt(v, ".2f") for v in s["memtui_gb"]),
            "flat",
            "see chart",
        ),
        (
            "scaling naive GB at " + "/".join(f"{f}x" for f in s["factors"]),
            " / ".join(fmt(v, ".2f") for v in s["naive_gb"]),
            "",
            "see chart",
        ),
        (
            "sample_us (one RSS read / one monitor sample)",
            f"{fig['sample_us']:.1f} / {d['sampler']['monitor_sample_us']:.1f}",
            "",
            f"sampler CPU share at {d['sampler']['interval_s']}s: {fig['sampler_cpu_share'] * 100:.3f}% measured, "
            f"{d['sampler']['sampler_cpu_share_from_cost'] * 100:.3f}% from cost",
        ),
        (
            "pause_latency_s (pause -> idle, long texts)",
            fmt(fig["pause_latency_s"]),
            "",
            f"median of {len(lat['pauses_s'])}: " + ", ".join(f"{p:.2f}" for p in lat["pauses_s"]),
        ),
        (
            "breaker_latency_s (crossing -> work held)",
            fmt(fig["breaker_latency_s"]),
            "",
            f"batches admitted after crossing: {lat['breaker'].get('batches_started_after_crossing')}",
        ),
        (
            "resume_s (rerun over a complete cache, CLI wall)",
            fmt(fig["resume_s"], ".2f"),
            "< 5",
            f"model loaded: {d['resume']['model_loaded']}, embedded {d['resume']['items_embedded']}",
        ),
        (
            "utilization (encode FLOP/s / fp32 matmul rate)",
            fmt(fig["utilization"]),
            "",
            f"memtui {tp['memtui_gflops']:.1f}, peer {tp['peer_gflops']:.1f}, matmul {tp['matmul_gflops']:.1f} GFLOP/s",
        ),
    ]
    out = ["| figure | value | goal | notes |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows]
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a subset: a few minutes on 2 idle cores")
    size.add_argument("--smoke", action="store_true", help="the smallest case (CI): checks the harness only")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data and caches here (default: a temp dir)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument(
        "--backends",
        choices=["auto", "only", "skip"],
        default="auto",
        help="the onnx-int8 figures: with the rest when memtui[onnx] is installed (auto), alone, or not",
    )
    args = ap.parse_args(argv)
    prof = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    log = Log(args.quiet)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="memtui-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_start = os.getloadavg()
    log(f"profile {prof.name}, work dir {work}")
    from memtui.embed.backends import available

    with_backends = args.backends == "only" or (args.backends == "auto" and available("onnx-int8"))
    if args.backends == "only":
        try:
            return backends_only(prof, work, log, args.json)
        finally:
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
    try:
        # Data. The full profile's base is generate.py at its defaults: the bundled sample itself.
        if prof.name == "full":
            base = {1: SAMPLE}
        else:
            base = {1: generate(work / "base-x1.jsonl.gz", prof.base_domains, 1, prof.base_responses)}
        for f in prof.factors[1:]:
            base[f] = generate(work / f"base-x{f}.jsonl.gz", prof.base_domains, f, prof.base_responses)
        texts = {f: count_lines(p) for f, p in base.items()}
        tp_input = first_domains(base[1], work / "throughput.jsonl", prof.tp_domains)
        long_input = long_texts(work / "long.jsonl", prof.long_texts)

        # 5. the sampler's cost first, while this process is otherwise idle.
        log("sampler cost")
        sampler = sampler_cost(prof.sampler_window_s)

        # 1 + 8. throughput pair and utilization.
        log(f"throughput: memtui vs plain encode, {count_lines(tp_input)} texts, {prof.repeats} pair(s)")
        tp = run_child(
            "throughput",
            "--input",
            str(tp_input),
            "--workdir",
            str(work),
            "--repeats",
            str(prof.repeats),
            "--batch-sizes",
            prof.batch_sizes,
        )

        # 2 + 3 + 4. memory: memtui and naive at each factor, each its own process.
        mem_runs: dict[int, Any] = {}
        naive_runs: dict[int, Any] = {}
        for f in prof.factors:
            cache = work / f"memtui-x{f}.sqlite"
            cap = [] if f == 1 else ["--cap", str(prof.memtui_cap_s)]
            log(f"memory: memtui at {f}x ({texts[f]} texts){' capped at %ss' % prof.memtui_cap_s if cap else ''}")
            mem_runs[f] = Child("memtui", "--input", str(base[f]), "--cache", str(cache), *cap)
            if not prof.parallel_memory:
                mem_runs[f] = mem_runs[f].result()
            log(f"memory: naive at {f}x ({texts[f]} texts), encode capped at {prof.naive_cap_s}s")
            naive_runs[f] = Child("naive", "--input", str(base[f]), "--cap", str(prof.naive_cap_s))
            if not prof.parallel_memory:
                naive_runs[f] = naive_runs[f].result()
        mem_runs = {f: r if isinstance(r, dict) else r.result() for f, r in mem_runs.items()}
        naive_runs = {f: r if isinstance(r, dict) else r.result() for f, r in naive_runs.items()}

        # 7. resume over the complete 1x cache.
        log("resume over the complete cache (CLI)")
        resume = resume_runs(base[1], work / "memtui-x1.sqlite", work, prof.resume_runs)

        # 6. pause and breaker latency on long texts.
        log(f"latency: pause and breaker on {prof.long_texts} long texts")
        lat = run_child(
            "latency", "--input", str(long_input), "--cache", str(work / "latency.sqlite"), "--trials", str(prof.trials)
        )
        backends = backend_figures(prof, work, tp_input, log) if with_backends else None
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    m1 = mem_runs[1]
    after = m1["rss_after_domains"]
    ref = next(((d, r) for d, r in after if d >= 10), after[0] if after else (0, 0))
    last = after[-1] if after else (0, 0)
    drift = {
        "from_domains": ref[0],
        "to_domains": last[0],
        "rss_from_mb": ref[1] / MB,
        "rss_to_mb": last[1] / MB,
        "drift_mb": (last[1] - ref[1]) / MB,
        "rss_after_domains": after,
    }
    scaling = {
        "factors": list(prof.factors),
        "texts": [texts[f] for f in prof.factors],
        "memtui_gb": [mem_runs[f]["vmhwm_gb"] for f in prof.factors],
        "naive_gb": [naive_runs[f]["vmhwm_gb"] for f in prof.factors],
        "memtui_capped": [mem_runs[f]["capped"] for f in prof.factors],
        "memtui_domains_done": [mem_runs[f]["report"]["domains_done"] for f in prof.factors],
        "naive_ended": [naive_runs[f]["ended"] for f in prof.factors],
        "naive_output_gb": [naive_runs[f]["output_bytes"] / GB for f in prof.factors],
        "naive_after_data_gb": [naive_runs[f]["rss_after_data_bytes"] / GB for f in prof.factors],
    }
    pauses = lat["pauses_s"]
    breaker = lat["breaker"]
    loads = log.loads + [os.getloadavg()[0]]
    figures: dict[str, Any] = {
        "profile": prof.name,
        "throughput_ratio": tp["ratio_median"],
        "peak_rss_gb": m1["vmhwm_gb"],
        "naive_peak_rss_gb": naive_runs[1]["vmhwm_gb"],
        "drift_mb": drift["drift_mb"],
        "scaling": scaling,
        "sample_us": sampler["probe_us"],
        "sampler_cpu_share": sampler["sampler_cpu_share_measured"],
        "pause_latency_s": statistics.median(pauses) if pauses else None,
        "breaker_latency_s": breaker.get("open_to_held_s"),
        "resume_s": resume["median_s"],
        "utilization": tp["utilization"],
        **({k: v for k, v in backends.items() if k != "details"} if backends else {}),
        "machine": {
            **machine(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "load1_min": min(loads),
            "load1_max": max(loads),
            "load1_median": statistics.median(loads),
        },
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "details": {
            "throughput": tp,
            "memtui": m1,
            "naive": naive_runs[1],
            "drift": drift,
            "sampler": sampler,
            "latency": lat,
            "resume": resume,
            "backends": backends["details"] if backends else None,
            "scaling_runs": {
                "memtui": {str(f): {k: v for k, v in r.items() if k != "report"} for f, r in mem_runs.items()},
                "naive": {str(f): r for f, r in naive_runs.items()},
            },
        },
    }
    mach = figures["machine"]
    print(f"memtui bench ({prof.name}) at {figures['started']}, {figures['duration_s']:.0f}s, commit {mach['commit']}")
    print(
        f"machine: {mach['nproc']} cores, {mach['cpu']}, {mach['ram_gb']} GB RAM; load average (1 min) during the "
        f"run {mach['load1_min']:.1f}..{mach['load1_max']:.1f} (median {mach['load1_median']:.1f})"
    )
    print()
    print(table(figures))
    print()
    if backends:
        print(backend_table(backends))
        print()
    print(scaling_chart(scaling))
    notes = [
        f"{f}x: memtui {'capped at %ss after %d domains' % (prof.memtui_cap_s, d) if c else 'complete'}; "
        f"naive ended by {e}"
        for f, c, d, e in zip(
            prof.factors, scaling["memtui_capped"], scaling["memtui_domains_done"], scaling["naive_ended"]
        )
    ]
    print("; ".join(notes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
