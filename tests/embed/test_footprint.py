"""The model footprint estimate and the refusal to start a job the memory limit cannot hold."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memtui.embed import footprint
from memtui.embed.footprint import RUNTIME_BYTES, WEIGHTS_FACTOR, estimate, require_room, weights_bytes
from memtui.errors import MemtuiError, ResourceError
from memtui.memory.probe import MemoryLimit
from memtui.memory.units import GB, MB


def sized(path, n: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(n)  # sparse: the size is what counts
    return path


def test_weights_prefer_safetensors_and_skip_other_exports(tmp_path):
    sized(tmp_path / "model.safetensors", 90 * MB)
    sized(tmp_path / "pytorch_model.bin", 95 * MB)  # the loader reads one kind: safetensors first
    sized(tmp_path / "2_Dense" / "model.safetensors", 1 * MB)
    sized(tmp_path / "onnx" / "model.onnx", 90 * MB)
    sized(tmp_path / "onnx" / "model.safetensors", 90 * MB)
    sized(tmp_path / "training_args.bin", 5 * MB)
    (tmp_path / "config.json").write_text("{}")
    assert weights_bytes(tmp_path) == 91 * MB


def test_weights_fall_back_to_pytorch_bin(tmp_path):
    sized(tmp_path / "pytorch_model.bin", 400 * MB)
    assert weights_bytes(tmp_path) == 400 * MB
    assert weights_bytes(tmp_path / "nowhere") == 0


def test_estimate_for_a_folder(tmp_path):
    sized(tmp_path / "model.safetensors", 420 * MB)
    found = estimate(tmp_path)
    assert found.weights_bytes == 420 * MB and found.folder == tmp_path.resolve()
    assert found.need_bytes == RUNTIME_BYTES + WEIGHTS_FACTOR * 420 * MB
    assert found.basis == "0.39GB runtime + 2 x 0.41GB weights"


def test_estimate_for_the_packaged_model_is_the_measured_basis():
    found = estimate()
    assert 80 * MB < found.weights_bytes < 100 * MB  # model.safetensors, 86.7 MiB
    assert 0.5 * GB < found.need_bytes < 0.6 * GB  # measured: killed at 400-450 MiB, ran well from 550 MiB
    assert estimate("all-MiniLM-L6-v2") == found == estimate("sentence-transformers/all-MiniLM-L6-v2")


def test_an_unknown_hub_name_counts_the_runtime_only(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    found = estimate("someone/not-cached")
    assert found.weights_bytes is None and found.need_bytes == RUNTIME_BYTES
    assert "weights unknown" in found.basis
    snapshot = tmp_path / "models--someone--cached" / "snapshots" / "abc"
    sized(snapshot / "model.safetensors", 10 * MB)
    assert estimate("someone/cached").weights_bytes == 10 * MB


def test_require_room_refuses_a_limit_below_the_need_in_one_line():
    limit = MemoryLimit(350 * MB, "cgroup v1 memory.limit_in_bytes (/small)")
    with pytest.raises(ResourceError) as info:
        require_room(limit)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(
        "memory limit 0.34GB (cgroup v1 memory.limit_in_bytes (/small)) is below the ~0.56GB "
        "this model needs to load and encode"
    )
    assert text.endswith("raise the container's memory limit or run on a bigger machine")
    assert isinstance(info.value, MemtuiError) and info.value.exit_code == 1


def test_require_room_refuses_a_lowered_default_breaker_below_the_need():
    need = estimate().need_bytes
    limit = MemoryLimit(int(need * 1.05), "cgroup memory.max (/c)")
    with pytest.raises(ResourceError) as info:
        require_room(limit, lowered_breaker_bytes=int(need * 1.05 * 0.85))
    assert "leaves a default breaker of" in str(info.value)
    assert f"raise the container's memory limit to {need / 0.85 / GB:.2f}GB or more" in str(info.value)
    assert "--max-memory" in str(info.value)


@pytest.mark.parametrize(
    "limit", [None, MemoryLimit(0, "unknown (no limit found)"), MemoryLimit(24 * GB, "physical RAM")]
)
def test_require_room_lets_a_big_or_unknown_limit_through(limit):
    assert require_room(limit, lowered_breaker_bytes=None).need_bytes == estimate().need_bytes
    require_room(MemoryLimit(GB, "x"), lowered_breaker_bytes=int(0.85 * GB))


def test_footprint_never_imports_torch():
    code = (
        "import sys; from memtui.embed.footprint import estimate, require_room; estimate(); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'sentence_transformers', "
        "'transformers')], sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_module_documents_its_measurements():
    assert "VmHWM" in footprint.__doc__ and "killed (137)" in footprint.__doc__
