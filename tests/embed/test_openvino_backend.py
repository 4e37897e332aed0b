"""The openvino backend: the onnx backend's fp32 export, run by OpenVINO in bf16 where the CPU has it.

Vectors against torch fp32 on texts of the bundled sample, the precision chosen from the CPU's
flags, a real ``memtui run --backend openvino`` whose vectors carry their precision in the cache
and are never served to another backend, and the missing extra as a one-line exit 2.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from memtui.embed import openvino_backend as ovb
from memtui.embed.model import Embedder
from memtui.errors import UsageError
from tests.support.cli import REPO, make_sample, memtui, memtui_env

pytestmark = pytest.mark.model

SAMPLE = REPO / "sample_data" / "responses.jsonl.gz"
#: A /proc/cpuinfo cut down to what the chooser reads (two cores of this machine's kind, less some flags).
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni {extra}

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni {extra}
"""


def sample_texts(n: int) -> list[str]:
    """The first ``n`` distinct responses of the bundled sample (realistic lengths, many cut at 256 tokens)."""
    texts: dict[str, None] = {}
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            texts.setdefault(json.loads(line)["response"], None)
            if len(texts) == n:
                break
    return list(texts)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts(160)


@pytest.fixture(scope="module")
def torch_vectors(real_embedder, texts) -> np.ndarray:
    return real_embedder.encode(texts)


@pytest.fixture(scope="module")
def small_input(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("input") / "small.jsonl.gz", domains=2, responses=30)


# -- the precision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("avx512_bf16", "bf16"), ("amx_bf16 amx_tile", "bf16"), ("", "fp32"), ("avx512bw", "fp32")],
)
def test_the_precision_follows_the_cpu_flags(extra, expected):
    flags = ovb.cpu_flags(CPUINFO.format(extra=extra))
    assert "avx512_vnni" in flags
    assert ovb.choose_precision(flags, env={}) == expected


def test_a_cpu_without_a_flags_line_runs_fp32():
    assert ovb.cpu_flags("processor\t: 0\nFeatures\t: fp asimd\n") == frozenset()
    assert ovb.choose_precision(frozenset(), env={}) == "fp32"


def test_the_precision_can_be_forced_to_fp32_but_never_to_an_emulated_bf16():
    bf16 = ovb.cpu_flags(CPUINFO.format(extra="avx512_bf16"))
    assert ovb.choose_precision(bf16, env={ovb.PRECISION_ENV: "fp32"}) == "fp32"
    assert ovb.choose_precision(bf16, env={ovb.PRECISION_ENV: " BF16 "}) == "bf16"
    with pytest.raises(UsageError, match="neither amx_bf16 nor avx512_bf16"):
        ovb.choose_precision(frozenset({"avx512f"}), env={ovb.PRECISION_ENV: "bf16"})
    with pytest.raises(UsageError, match="'fp16' is not a precision"):
        ovb.choose_precision(bf16, env={ovb.PRECISION_ENV: "fp16"})


def test_the_compiled_model_runs_the_precision_chosen_for_this_cpu(models_env, monkeypatch):
    monkeypatch.delenv(ovb.PRECISION_ENV, raising=False)
    flags = ovb.cpu_flags()  # the real /proc/cpuinfo
    chosen = "bf16" if flags & ovb.BF16_FLAGS else "fp32"
    embedder = Embedder(backend="openvino")
    model = embedder.load()
    assert embedder.vector_backend == f"openvino/{chosen}"
    assert model.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == ovb.HINTS[chosen]
    assert model.onnx_path.name == "model.onnx" and model.onnx_path.parent.parent == models_env  # the onnx export


# -- the vectors ---------------------------------------------------------------------------------


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_vectors_stay_within_cosine_0_9999_of_torch_fp32(models_env, monkeypatch, texts, torch_vectors):
    monkeypatch.delenv(ovb.PRECISION_ENV, raising=False)
    vectors = Embedder(backend="openvino").encode(texts)
    cos = cosines(vectors, torch_vectors)
    assert np.percentile(cos, 1) >= 0.9999, np.percentile(cos, 1)
    assert cos.mean() >= 0.99995, cos.mean()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_fp32_is_torch_fp32(models_env, monkeypatch, texts, torch_vectors):
    """The path of a CPU without bf16 (forced here): the very vectors, to float rounding."""
    monkeypatch.setenv(ovb.PRECISION_ENV, "fp32")
    embedder = Embedder(backend="openvino")
    assert embedder.vector_backend == "openvino/fp32"
    cos = cosines(embedder.encode(texts[:40]), torch_vectors[:40])
    assert cos.min() >= 0.999999, cos.min()


def test_slices_run_side_by_side_and_keep_the_row_order(models_env, texts, torch_vectors):
    embedder = Embedder(backend="openvino")
    model = embedder.load()
    ids = embedder._token_ids([embedder.window(t) for t in texts[:24]])
    assert sum(len(r) for r in ids) > 2 * ovb.RUN_TOKENS  # more than one slice per call
    vectors = model.encode_ids(ids)
    assert cosines(vectors, torch_vectors[:24]).min() > 0.9999  # row i is text i


# -- through the CLI -----------------------------------------------------------------------------


def test_a_run_commits_vectors_tagged_with_the_precision_and_no_other_backend_reuses_them(
    models_env, small_input, tmp_path
):
    tag = ovb.vector_tag(ovb.choose_precision(ovb.cpu_flags(), env={}))
    cache = tmp_path / "cache.sqlite"
    env = memtui_env(MEMTUI_MODEL_CACHE=str(models_env))
    env.pop(ovb.PRECISION_ENV, None)
    first = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "openvino", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    n = report["items_embedded"]
    assert report["status"] == "success" and report["backend"] == tag and n > 0
    assert f"openvino: {tag.split('/')[1]} inference (" in first.stderr  # the log says what it picked and why
    assert "Model loaded" in first.stderr
    info = json.loads(memtui("cache", "info", "--cache", cache, "--json", env=env).stdout)
    assert info["backends"] == {tag: {"vectors": n, "domains_done": 2}}
    again = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "openvino", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["items_embedded"] == 0  # resumes in its own tag
    other = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "onnx", env=env)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["items_embedded"] == n  # never served openvino's vectors
    if tag == "openvino/bf16":  # the other precision is another backend too
        fp32 = memtui(
            "run", "--headless", "--input", small_input, "--cache", cache, "--backend", "openvino",
            env=dict(env, **{ovb.PRECISION_ENV: "fp32"}),
        )  # fmt: skip
        assert fp32.returncode == 0, fp32.stderr
        assert json.loads(fp32.stdout)["backend"] == "openvino/fp32"
        assert json.loads(fp32.stdout)["items_embedded"] == n
    info = json.loads(memtui("cache", "info", "--cache", cache, "--json", env=env).stdout)
    assert info["backends"][tag] == {"vectors": n, "domains_done": 2} and "onnx" in info["backends"]


HIDE_OPENVINO = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "openvino" or name.startswith("openvino."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
"""


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_without_the_extra_openvino_says_what_to_install_in_one_line(tmp_path, small_input):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDE_OPENVINO)
    env = memtui_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]), MEMTUI_MODEL_CACHE=str(tmp_path / "models")
    )
    cache = tmp_path / "c.sqlite"
    run = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "openvino", env=env)
    assert run.returncode == 2, run.stderr
    assert _error_lines(run.stderr) == [
        "memtui: error: --backend openvino needs openvino, which is not installed; pip install 'memtui[openvino]'"
    ]
    assert "Traceback" not in run.stderr
    assert not cache.exists()  # refused before any cache file was made


def test_a_bad_precision_setting_is_exit_2_in_one_line(tmp_path, small_input, models_env):
    cache = tmp_path / "c.sqlite"
    env = memtui_env(MEMTUI_MODEL_CACHE=str(models_env), **{ovb.PRECISION_ENV: "int4"})
    run = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "openvino", env=env)
    assert run.returncode == 2, run.stderr
    assert _error_lines(run.stderr) == [
        f"memtui: error: {ovb.PRECISION_ENV}='int4' is not a precision; set bf16 or fp32, or unset it"
    ]
    assert "Traceback" not in run.stderr and not cache.exists()
