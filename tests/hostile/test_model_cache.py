"""The model cache on a hostile server: another user's folders, loose modes, links, swapped and half-written
exports, and the memory the backends and the one-time export need, under real memory cgroups. The openvino
backend reads the onnx backend's ``model.onnx`` and is held to the same checks (its own section below).

One export per session (``onnx_models`` in tests/conftest.py); each test tampers with its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from memtui.embed import model_cache
from memtui.embed.artifacts import artifact_name, detect_isa, model_hash, vector_backend
from memtui.embed.backends import ensure_exported
from memtui.embed.footprint import estimate, export_need, weights_bytes
from memtui.embed.model import _packaged_model_path
from memtui.memory.units import GB, MB
from memtui.safefs import UnsafeFile
from tests.support.cli import make_sample, memtui, memtui_env
from tests.support.hostile import NOBODY, cache_counts, error_lines, mode_of, require_root, sticky_folder

pytestmark = pytest.mark.model

INT8 = artifact_name("onnx-int8", detect_isa())


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    return make_sample(tmp_path_factory.mktemp("input") / "small.jsonl.gz", domains=2, responses=20)


def copy_cache(onnx_models: Path, where: Path) -> Path:
    """A private copy of the session's export (the model's folder keeps its hash name)."""
    where.mkdir(parents=True, exist_ok=True)
    root = where / "models"
    shutil.copytree(onnx_models, root, symlinks=True)
    return root


def export_folder(root: Path) -> Path:
    return root / model_hash(_packaged_model_path())


def use(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMTUI_MODEL_CACHE", str(root))


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]


# -- owners, modes, links ------------------------------------------------------------------------


def test_a_cache_root_of_another_user_is_refused_in_one_line(onnx_models, tmp_path, small_input):
    require_root()
    root = copy_cache(onnx_models, tmp_path)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)
    cache = tmp_path / "c.sqlite"
    done = memtui(
        "run",
        "--headless",
        "--backend",
        "onnx-int8",
        "--input",
        small_input,
        "--cache",
        cache,
        env=memtui_env(MEMTUI_MODEL_CACHE=str(root)),
    )
    no_traceback(done.stderr)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = error_lines(done.stderr)
    assert f"model cache {root} belongs to another user (owner nobody" in line
    assert "set MEMTUI_MODEL_CACHE to a folder of root" in line
    assert not cache.exists() or cache_counts(cache)["embeddings"] == 0  # refused before any work


@pytest.mark.parametrize("whose", ["export folder", "model file", "manifest"])
def test_an_export_part_of_another_user_is_refused(onnx_models, tmp_path, monkeypatch, whose):
    require_root()
    root = copy_cache(onnx_models, tmp_path)
    target = {
        "export folder": export_folder(root),
        "model file": export_folder(root) / INT8,
        "manifest": export_folder(root) / model_cache.MANIFEST,
    }[whose]
    os.chown(target, NOBODY, NOBODY)
    use(root, monkeypatch)
    with pytest.raises(UnsafeFile) as info:
        ensure_exported(_packaged_model_path(), "onnx-int8")
    assert str(target) in str(info.value) and "belongs to another user (owner nobody" in str(info.value)
    assert os.stat(target).st_uid == NOBODY  # refused, not taken over


def test_loose_modes_of_ours_are_tightened_and_the_export_reused(onnx_models, tmp_path, monkeypatch):
    root = copy_cache(onnx_models, tmp_path)
    folder = export_folder(root)
    before = mtimes(folder)
    os.chmod(root, 0o777)
    os.chmod(folder, 0o777)
    os.chmod(folder / INT8, 0o666)
    use(root, monkeypatch)
    assert ensure_exported(_packaged_model_path(), "onnx-int8") == folder / INT8
    assert (mode_of(root), mode_of(folder), mode_of(folder / INT8)) == (0o700, 0o700, 0o600)
    assert mtimes(folder) == before  # verified, not exported again


@pytest.mark.parametrize("above", ["writable by all", "sticky of another user", "home of another user"])
def test_a_folder_above_the_root_that_another_user_can_change_is_refused(onnx_models, tmp_path, monkeypatch, above):
    require_root()
    if above == "writable by all":
        parent = tmp_path / "open"
        parent.mkdir()
        os.chmod(parent, 0o777)  # anyone may rename the cache away and put theirs in its place
    elif above == "sticky of another user":
        parent = sticky_folder(tmp_path)  # its owner may still rename anything in it
    else:
        parent = tmp_path / "bob"
        parent.mkdir()
        os.chown(parent, NOBODY, NOBODY)  # root with another user's HOME or XDG_CACHE_HOME
    root = copy_cache(onnx_models, parent)
    if above == "home of another user":
        monkeypatch.delenv("MEMTUI_MODEL_CACHE", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(parent))
        root = parent / "memtui" / "models"
    else:
        use(root, monkeypatch)
    with pytest.raises(UnsafeFile) as info:
        ensure_exported(_packaged_model_path(), "onnx-int8")
    text = str(info.value)
    assert f"model cache {root}" in text and f" lies in {parent}, which" in text and "\n" not in text
    assert ("belongs to another user" if above != "writable by all" else "which others can write") in text


def test_a_sticky_folder_of_root_above_the_root_is_fine(onnx_models, tmp_path, monkeypatch):
    shared = sticky_folder(tmp_path, owner=os.geteuid())  # as /tmp
    root = copy_cache(onnx_models, shared)
    use(root, monkeypatch)
    assert ensure_exported(_packaged_model_path(), "onnx-int8") == export_folder(root) / INT8


@pytest.mark.parametrize("linked", ["cache root", "export folder", "model file", "folder above"])
def test_links_are_refused(onnx_models, tmp_path, monkeypatch, linked):
    require_root()
    real = copy_cache(onnx_models, tmp_path / "real")
    root = real
    if linked == "cache root":
        root = tmp_path / "models-link"
        os.symlink(real, root)
    elif linked == "export folder":
        aside = tmp_path / "aside"
        os.rename(export_folder(real), aside)
        os.symlink(aside, export_folder(real))
    elif linked == "model file":
        aside = tmp_path / "int8.onnx"
        os.rename(export_folder(real) / INT8, aside)
        os.symlink(aside, export_folder(real) / INT8)
    else:  # a link above the root into another user's folder
        bobs = tmp_path / "bob"
        bobs.mkdir()
        os.rename(real, bobs / "models")
        os.chown(bobs, NOBODY, NOBODY)
        hop = tmp_path / "hop"
        os.symlink(bobs, hop)
        root = hop / "models"
    use(root, monkeypatch)
    with pytest.raises(UnsafeFile) as info:
        ensure_exported(_packaged_model_path(), "onnx-int8")
    text = str(info.value)
    bobs = f"lies in {tmp_path / 'bob'}, which belongs to another user"
    expected = bobs if linked == "folder above" else "is a symbolic link"
    assert expected in text and "\n" not in text


# -- what is loaded is what the export wrote ------------------------------------------------------


def vectors_by_key(cache: Path) -> dict[bytes, bytes]:
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT e.key, e.vector FROM embeddings e JOIN backend_vectors b ON b.key = e.key WHERE b.backend = ?",
            (vector_backend("onnx-int8"),),
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_a_swapped_model_file_is_exported_again_never_committed(onnx_models, tmp_path, small_input):
    """The int8 file replaced by another valid model (the fp32 one): the run notices, exports afresh,
    and commits exactly the genuine export's vectors under the int8 tag."""
    genuine = copy_cache(onnx_models, tmp_path / "genuine")
    swapped = copy_cache(onnx_models, tmp_path / "swapped")
    folder = export_folder(swapped)
    shutil.copyfile(folder / "model.onnx", folder / INT8)  # loads fine, gives other vectors
    runs = {}
    for name, root in (("genuine", genuine), ("swapped", swapped)):
        cache = tmp_path / f"{name}.sqlite"
        done = memtui(
            "run",
            "--headless",
            "--mode",
            "cache",
            "--backend",
            "onnx-int8",
            "--input",
            small_input,
            "--cache",
            cache,
            env=memtui_env(MEMTUI_MODEL_CACHE=str(root)),
            timeout=900,
        )
        no_traceback(done.stderr)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = (done.stderr, vectors_by_key(cache))
    assert "does not match its export manifest" in runs["swapped"][0]
    assert "exporting again into a fresh folder" in runs["swapped"][0]
    assert "does not match" not in runs["genuine"][0]
    assert runs["swapped"][1].keys() == runs["genuine"][1].keys() and runs["genuine"][1]
    for key, blob in runs["genuine"][1].items():
        assert np.allclose(np.frombuffer(blob, "<f4"), np.frombuffer(runs["swapped"][1][key], "<f4"), atol=1e-6)
    assert model_cache.verify(folder, INT8).path == folder / INT8  # the fresh export, verified


def test_a_half_written_export_is_never_loaded(onnx_models, tmp_path, monkeypatch):
    """A real export killed half-way leaves only its temporary folder; a folder with files but no
    manifest (an older layout, a copy cut short) is exported again, not loaded."""
    require_root()
    root = copy_cache(onnx_models, tmp_path)
    folder = export_folder(root)
    # 1. A real export SIGKILLed in its first step: nothing appears at its final name.
    out = root / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui.embed.onnx_export", "--model", str(_packaged_model_path()), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".killed.") for p in root.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, "the export never started its temp folder"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    assert not out.exists()
    temps = [p for p in root.iterdir() if p.name.startswith(".killed.")]
    assert temps and mode_of(temps[0]) == 0o700
    # 2. The export folder cut short: the int8 file halved, the manifest gone.
    data = (folder / INT8).read_bytes()
    (folder / INT8).write_bytes(data[: len(data) // 2])
    (folder / model_cache.MANIFEST).unlink()
    use(root, monkeypatch)
    lines: list[str] = []
    path = ensure_exported(_packaged_model_path(), "onnx-int8", log=lines.append)
    assert any("has no manifest" in line and "exporting again into a fresh folder" in line for line in lines), lines
    assert path == folder / INT8 and (folder / INT8).read_bytes() == data
    assert not [p for p in root.iterdir() if ".retired-" in p.name]


def test_hashing_reads_no_more_than_the_manifest_says(tmp_path):
    """A file grown huge (sparse, 64 GiB) is found out after the manifest's size + 1 bytes, not read whole."""
    folder = tmp_path / "export"
    folder.mkdir(mode=0o700)
    (folder / "m.onnx").write_bytes(b"x" * 10)
    (folder / model_cache.MANIFEST).write_text(json.dumps({"files": model_cache.manifest_files(folder)}))
    assert model_cache.verify(folder, "m.onnx").path == folder / "m.onnx"
    with open(folder / "m.onnx", "r+b") as fh:
        fh.truncate(64 << 30)
    started = time.monotonic()
    verdict = model_cache.verify(folder, "m.onnx")
    assert verdict.path is None and "size 11," in verdict.reason
    assert time.monotonic() - started < 30  # reading 64 GiB of holes would take minutes


def test_a_stale_temporary_export_is_swept_a_young_one_kept(tmp_path):
    root = tmp_path / "models"
    root.mkdir(mode=0o700)
    old, young = root / ".abc.old1", root / ".abc.new1"
    for path in (old, young):
        path.mkdir()
        (path / "raw.onnx").write_bytes(b"half")
    os.utime(old, (time.time() - 2 * model_cache.STALE_TEMP_S,) * 2)
    model_cache.sweep_stale_temps(root, "abc")
    assert not old.exists() and young.exists()


# -- memory: the need follows the backend; the export is guarded too ---------------------------------

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def make_memory_cgroup(limit: int) -> Path:
    """A fresh memory cgroup (v1, else v2) with ``limit``; skips with the reason where none can be made."""
    require_root()
    controllers = V2 / "cgroup.subtree_control"
    if (V1 / "memory.limit_in_bytes").exists():
        base, knob = V1, "memory.limit_in_bytes"
    elif controllers.exists() and "memory" in controllers.read_text().split():
        base, knob = V2, "memory.max"
    else:
        pytest.skip("no writable memory cgroup (neither v1 at /sys/fs/cgroup/memory nor v2 with memory delegated)")
    folder = base / f"memtui-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir()
        (folder / knob).write_text(str(limit))
    except OSError as exc:
        if folder.exists():
            folder.rmdir()
        pytest.skip(f"cannot create a memory cgroup here ({exc.strerror}): needs root and a writable cgroupfs")
    return folder


def in_cgroup(folder: Path, args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: (folder / "cgroup.procs").write_text(str(os.getpid())),
    )


def oom_kills(folder: Path) -> int:
    """The kernel's count of OOM kills in the cgroup (v2 memory.events, v1 memory.oom_control)."""
    for name in ("memory.events", "memory.oom_control"):
        try:
            rows = dict(line.split()[:2] for line in (folder / name).read_text().splitlines() if line.strip())
        except OSError:
            continue
        return int(rows.get("oom_kill", 0))
    return 0


def remove_cgroup(folder: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            folder.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_need_follows_the_backend():
    torch, onnx, int8 = (estimate(None, b).need_bytes for b in ("torch", "onnx", "onnx-int8"))
    assert int8 < onnx < torch
    assert 0.24 * GB < int8 < 0.30 * GB  # measured peak 0.23 GiB + margin: fits the 0.39 GB cgroup
    assert 0.55 * GB < torch < 0.6 * GB
    assert estimate(None, "onnx-int8").basis == "onnx-int8: 0.19GB runtime + 1 x 0.08GB weights"
    assert 0.9 * GB < export_need(weights_bytes(_packaged_model_path())) < 1.05 * GB
    openvino = estimate(None, "openvino").need_bytes
    assert int8 < openvino < torch and openvino <= 0.85 * 600 * MB  # fits the breaker of a 600 MiB limit


def test_int8_runs_in_a_0_40gb_cgroup_where_torch_is_refused(onnx_models, tmp_path, small_input):
    root = copy_cache(onnx_models, tmp_path)
    folder = make_memory_cgroup(400 * MB)
    try:
        env = memtui_env(MEMTUI_MODEL_CACHE=str(root))
        runs = {
            backend: in_cgroup(
                folder,
                [
                    "-m",
                    "memtui",
                    "run",
                    "--headless",
                    "--mode",
                    "cache",
                    "--backend",
                    backend,
                    "--input",
                    str(small_input),
                    "--cache",
                    str(tmp_path / f"{backend}.sqlite"),
                ],
                env,
            )
            for backend in ("onnx-int8", "torch")
        }
    finally:
        remove_cgroup(folder)
    int8, torch = runs["onnx-int8"], runs["torch"]
    no_traceback(int8.stderr + torch.stderr)
    assert int8.returncode == 0, int8.stderr[-3000:]
    assert torch.returncode == 1, torch.stderr[-3000:]
    (line,) = error_lines(torch.stderr)
    assert "is below the ~0.56GB this model needs to load and encode" in line


def test_the_export_is_refused_before_it_starts_in_a_0_6gb_cgroup(tmp_path, small_input):
    """No export yet: both ways to start it (a run, the export command) say the need in one line,
    exit 1, and nothing is OOM-killed or left half-written."""
    root = tmp_path / "models"
    folder = make_memory_cgroup(600 * MB)
    try:
        env = memtui_env(MEMTUI_MODEL_CACHE=str(root))
        run = in_cgroup(
            folder,
            [
                "-m",
                "memtui",
                "run",
                "--headless",
                "--backend",
                "onnx-int8",
                "--input",
                str(small_input),
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
            env,
        )
        export = in_cgroup(folder, ["-m", "memtui.embed.onnx_export"], env)
        killed = oom_kills(folder)
    finally:
        remove_cgroup(folder)
    for done in (run, export):
        no_traceback(done.stderr)
        assert done.returncode == 1, done.stderr[-3000:]
        (line,) = error_lines(done.stderr)
        assert "the one-time ONNX export of" in line and "needs ~0.9" in line
        assert "run `python -m memtui.embed.onnx_export` once with more memory" in line
    assert killed == 0
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_the_cli_check_counts_a_missing_export(onnx_models, tmp_path, monkeypatch):
    """Before any face: an int8 run whose export is still to be made needs the export's room too."""
    from memtui.embed.footprint import require_room
    from memtui.errors import ResourceError
    from memtui.memory.probe import MemoryLimit

    limit = MemoryLimit(600 * MB, "cgroup v1 memory.limit_in_bytes (/small)")
    monkeypatch.setenv("MEMTUI_MODEL_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ResourceError) as info:
        require_room(limit, backend="onnx-int8")
    assert "the one-time ONNX export of" in str(info.value) and "(cgroup v1 memory.limit_in_bytes (/small))" in str(
        info.value
    )
    use(copy_cache(onnx_models, tmp_path), monkeypatch)
    assert require_room(limit, backend="onnx-int8").need_bytes < 0.3 * GB  # made: only the run's need counts


def test_the_export_completes_in_a_cgroup_that_holds_its_need(tmp_path):
    """Each step in its own process: the export fits ~1.1 GB (it peaked at 1.11 GiB in one process)."""
    root = tmp_path / "models"
    folder = make_memory_cgroup(1100 * MB)
    try:
        done = in_cgroup(folder, ["-m", "memtui.embed.onnx_export"], memtui_env(MEMTUI_MODEL_CACHE=str(root)))
        killed = oom_kills(folder)
    finally:
        remove_cgroup(folder)
    no_traceback(done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    assert killed == 0
    assert model_cache.verify(export_folder(root), INT8).path == export_folder(root) / INT8


# -- openvino: the onnx export's model.onnx, under the same rules ------------------------------------------


@pytest.mark.parametrize("attack", ["linked model file", "model file of another user", "linked export folder"])
def test_openvino_compiles_the_onnx_export_only_through_the_model_cache_checks(
    onnx_models, tmp_path, monkeypatch, attack
):
    """OpenVINO writes nothing of its own: the file it compiles is the onnx backend's, refused as that is."""
    pytest.importorskip("openvino")
    require_root()
    from memtui.embed import openvino_backend

    root = copy_cache(onnx_models, tmp_path / "real")
    folder = export_folder(root)
    target = folder / "model.onnx"
    if attack == "linked model file":
        aside = tmp_path / "fp32.onnx"
        os.rename(target, aside)
        os.symlink(aside, target)
    elif attack == "model file of another user":
        os.chown(target, NOBODY, NOBODY)
    else:
        aside = tmp_path / "aside"
        os.rename(folder, aside)
        os.symlink(aside, folder)
        target = folder
    use(root, monkeypatch)
    with pytest.raises(UnsafeFile) as info:
        openvino_backend.load(_packaged_model_path(), threads=1)
    text = str(info.value)
    assert str(target) in text and "\n" not in text
    assert ("belongs to another user (owner nobody" if "another user" in attack else "is a symbolic link") in text
    assert os.path.islink(target) or os.stat(target).st_uid == NOBODY  # refused, not replaced or taken over


def test_openvino_runs_in_a_0_6gb_cgroup_where_torch_is_refused(onnx_models, tmp_path, small_input):
    """Its need (``footprint.NEEDS["openvino"]``, 0.47 GiB) fits the breaker a 600 MiB limit leaves (0.85 x);
    torch's 0.56 GiB does not, and is refused in one line before loading."""
    pytest.importorskip("openvino")
    root = copy_cache(onnx_models, tmp_path)
    folder = make_memory_cgroup(600 * MB)
    try:
        env = memtui_env(MEMTUI_MODEL_CACHE=str(root))
        args = ["-m", "memtui", "run", "--headless", "--mode", "cache", "--input", str(small_input)]
        runs = {
            backend: in_cgroup(folder, [*args, "--backend", backend, "--cache", str(tmp_path / f"{backend}.db")], env)
            for backend in ("openvino", "torch")
        }
        killed = oom_kills(folder)
    finally:
        remove_cgroup(folder)
    ov, torch = runs["openvino"], runs["torch"]
    no_traceback(ov.stderr + torch.stderr)
    assert ov.returncode == 0, ov.stderr[-3000:]
    assert json.loads(ov.stdout)["status"] == "success" and killed == 0
    assert torch.returncode == 1, torch.stderr[-3000:]
    (line,) = error_lines(torch.stderr)
    assert "below the ~0.56GB this model needs to load and encode" in line


@pytest.mark.parametrize("state", ["no export yet", "model.onnx swapped"])
def test_openvino_first_use_is_refused_before_the_export_starts_in_a_0_6gb_cgroup(
    onnx_models, tmp_path, small_input, state
):
    """openvino's first use is the onnx export (0.97 GiB): refused before it starts, naming the need; a
    model.onnx that does not match its manifest is never compiled: it needs that export again, refused alike."""
    pytest.importorskip("openvino")
    if state == "no export yet":
        root = tmp_path / "models"
    else:
        root = copy_cache(onnx_models, tmp_path)
        shutil.copyfile(export_folder(root) / INT8, export_folder(root) / "model.onnx")  # loads, other vectors
    before = sorted(p.name for p in root.rglob("*")) if root.exists() else []
    folder = make_memory_cgroup(600 * MB)
    try:
        run = in_cgroup(
            folder,
            ["-m", "memtui", "run", "--headless", "--backend", "openvino", "--input", str(small_input),
             "--cache", str(tmp_path / "c.sqlite")],
            memtui_env(MEMTUI_MODEL_CACHE=str(root)),
        )  # fmt: skip
        killed = oom_kills(folder)
    finally:
        remove_cgroup(folder)
    no_traceback(run.stderr)
    assert run.returncode == 1, run.stderr[-3000:]
    # no export yet: refused by the CLI before any face; swapped: found out by the load, the run fails naming it
    lines = error_lines(run.stderr) or [x for x in run.stderr.splitlines() if x.startswith("Error: ")]
    assert len(lines) == 1, run.stderr[-3000:]
    assert "the one-time ONNX export of" in lines[0] and "needs ~0.9" in lines[0]
    assert "openvino: " not in run.stderr and "Model loaded" not in run.stderr  # nothing was compiled
    assert killed == 0
    after = sorted(p.name for p in root.rglob("*")) if root.exists() else []
    assert after == before or (state == "no export yet" and not [p for p in root.rglob("*") if p.is_file()])
