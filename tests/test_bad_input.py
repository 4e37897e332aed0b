"""The bad-input catalog: every mistake an operator can make gets one clear line, exit 2, and no damage.

Each case runs the CLI's own ``main`` in this process, and one case of each class (the input, the config,
the flags, the environment, the cache) also runs the real CLI in a subprocess. It must print exactly one line on
stderr (``memtui: error: ...`` naming what and where), exit 2, print no
traceback, and leave the cache as it was: not created if it did not exist,
byte for byte the same if it did.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.store import CacheStore, key_for
from memtui.records import Response
from tests.support.cli import REPO, memtui, memtui_env, memtui_in_process
from tests.support.inputs import write_input


@dataclass
class Case:
    args: list[str]
    expect: str  # a fragment the one-line error must contain
    env: dict[str, str] = field(default_factory=dict)
    with_input: bool = True  # add --input <a good file> unless the case gives its own


def good_cache(path: Path, model_id: str = "sentence-transformers/all-MiniLM-L6-v2") -> Path:
    store = CacheStore.open(path, model_id)
    text = "an answer already embedded"
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    store.commit_batch(
        {key_for(model_id, text): vector},
        [Response(id="r1", domain="a.com", model="claude", prompt_type="security", text=text, line=1)],
    )
    store.close()
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


GOOD_LINE = json.dumps({"domain": "a.com", "model": "claude", "prompt_type": "security", "response": "fine"})

CASES: dict[str, Callable[[Path], Case]] = {
    # -- the input file ---------------------------------------------------------------
    "input missing": lambda d: Case(["--input", str(d / "nope.jsonl")], "nope.jsonl", with_input=False),
    "input is a folder": lambda d: Case(["--input", str(d)], str(d), with_input=False),
    "input empty": lambda d: Case(["--input", str(write(d / "e.jsonl", b""))], "no valid responses", with_input=False),
    "input all lines bad": lambda d: Case(
        ["--input", str(write(d / "b.jsonl", b"nope\n{\n"))], "b.jsonl:1", with_input=False
    ),
    "strict: malformed JSON": lambda d: Case(
        ["--strict", "--input", str(write(d / "m.jsonl", (GOOD_LINE + "\n{oops\n").encode()))],
        "m.jsonl:2",
        with_input=False,
    ),
    "strict: missing field": lambda d: Case(
        ["--strict", "--input", str(write(d / "f.jsonl", b'{"domain": "a.com", "model": "x", "response": "y"}\n'))],
        "prompt_type",
        with_input=False,
    ),
    "strict: empty response": lambda d: Case(
        [
            "--strict",
            "--input",
            str(write(d / "r.jsonl", b'{"domain":"a","model":"x","prompt_type":"p","response":"  "}\n')),
        ],
        "r.jsonl:1",
        with_input=False,
    ),
    "strict: non-UTF-8 bytes": lambda d: Case(
        ["--strict", "--input", str(write(d / "u.jsonl", GOOD_LINE.encode() + b"\n\xff\xfe bad\n"))],
        "u.jsonl:2",
        with_input=False,
    ),
    "strict: line over 16 MiB": lambda d: Case(
        ["--strict", "--input", str(write(d / "h.jsonl", (GOOD_LINE + "\n").encode() + b"x" * (17 << 20) + b"\n"))],
        "h.jsonl:2: longer than 16MB, the most memtui reads per line",
        with_input=False,
    ),
    "input only one line, over 16 MiB": lambda d: Case(
        ["--input", str(write(d / "o.jsonl", b"\x00" * (17 << 20)))],
        "no valid responses (1 bad line(s), e.g. ",
        with_input=False,
    ),
    "input domain split in two": lambda d: Case(
        [
            "--input",
            str(
                write(
                    d / "s.jsonl",
                    "\n".join(
                        [GOOD_LINE, GOOD_LINE.replace("a.com", "b.com"), GOOD_LINE.replace("fine", "again")]
                    ).encode(),
                )
            ),
        ],
        "s.jsonl:3",
        with_input=False,
    ),
    "truncated gzip": lambda d: Case(
        ["--input", str(write(d / "t.jsonl.gz", gzip.compress((GOOD_LINE + "\n").encode() * 2000)[:300]))],
        "t.jsonl.gz",
        with_input=False,
    ),
    # -- the config file --------------------------------------------------------------
    "config missing": lambda d: Case(["--config", str(d / "none.toml")], "none.toml"),
    "config not TOML": lambda d: Case(["--config", str(write(d / "c.toml", b"max-memory = = 1\n"))], "c.toml"),
    "config unknown setting": lambda d: Case(
        ["--config", str(write(d / "c.toml", b"[memory]\nmax_mem = 1\n"))], "max_mem"
    ),
    "config bad size": lambda d: Case(
        ["--config", str(write(d / "c.toml", b'[memory]\nmax-memory = "lots"\n'))], "lots"
    ),
    "config warning above max": lambda d: Case(
        ["--config", str(write(d / "c.toml", b"[memory]\nwarning-memory = 2.0\nmax-memory = 1.5\n"))], "warning"
    ),
    # -- flags ------------------------------------------------------------------------
    "flag max not a size": lambda d: Case(["--max-memory", "abc"], "abc"),
    "flag warning above max": lambda d: Case(["--warning-memory", "2", "--max-memory", "1.5"], "below max"),
    "flag batch min above max": lambda d: Case(["--batch-min", "6", "--batch-max", "5"], "batch"),
    "flag percent above 100": lambda d: Case(["--max-memory", "150%"], "150%"),
    "flag texts without embeddings mode": lambda d: Case(["--texts", "10"], "--texts"),
    "flag limit zero": lambda d: Case(["--limit", "0"], "--limit"),
    "flag unknown mode": lambda d: Case(["--mode", "fast"], "fast"),
    "flag model folder missing": lambda d: Case(["--model", str(d / "no-model")], "no-model"),
    # -- environment variables --------------------------------------------------------
    "env max not a size": lambda d: Case([], "MEMTUI_MAX_MEMORY", env={"MEMTUI_MAX_MEMORY": "lots"}),
    "env warning negative": lambda d: Case([], "warning", env={"MEMTUI_WARNING_MEMORY": "-1"}),
    "env config missing": lambda d: Case([], "gone.toml", env={"MEMTUI_CONFIG": str(d / "gone.toml")}),
    # -- the cache file ---------------------------------------------------------------
    "cache not SQLite": lambda d: Case(
        ["--cache", str(write(d / "c.sqlite", b"hello, not a database" * 100))], "c.sqlite"
    ),
    "cache truncated": lambda d: Case(
        ["--cache", str(write(d / "t.sqlite", good_cache(d / "g.sqlite").read_bytes()[:1500]))], "t.sqlite"
    ),
    "cache of another model": lambda d: Case(
        ["--cache", str(good_cache(d / "o.sqlite", "other/model"))], "other/model"
    ),
    "cache in a file, not a folder": lambda d: Case(["--cache", str(write(d / "f", b"x") / "c.sqlite")], "c.sqlite"),
}


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


#: One case of each class, run through the real entry point (``python -m memtui``) as well.
THROUGH_THE_ENTRY_POINT = [
    "input all lines bad",
    "config not TOML",
    "flag max not a size",
    "env max not a size",
    "cache of another model",
]


def check_bad_input(name: str, tmp_path: Path, run: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    case = CASES[name](tmp_path)
    args = ["run", "--headless", *case.args]
    if case.with_input:
        args += ["--input", str(write_input(tmp_path / "good.jsonl", domains=1, per_domain=9))]
    if "--cache" not in args:
        args += ["--cache", str(tmp_path / "default.sqlite")]
    before = snapshot(tmp_path)
    result = run(*args, env=memtui_env(**case.env))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("memtui: error: "), result.stderr
    assert case.expect in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(tmp_path) == before, "the run created or changed files"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_line_exit_2_and_no_damage(name, tmp_path):
    check_bad_input(name, tmp_path, memtui_in_process)


@pytest.mark.parametrize("name", THROUGH_THE_ENTRY_POINT)
def test_each_class_of_bad_input_through_the_real_entry_point(name, tmp_path):
    check_bad_input(name, tmp_path, lambda *args, env: memtui(*args, env=env, timeout=120))


def test_a_read_only_cache_is_refused_and_kept(tmp_path):
    cache = good_cache(tmp_path / "ro.sqlite")
    source = write_input(tmp_path / "in.jsonl", domains=1, per_domain=9)
    if subprocess.run(["chattr", "+i", str(cache)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (root ignores file modes)")
    try:
        before = cache.read_bytes()
        result = memtui("run", "--headless", "--input", source, "--cache", cache, timeout=120)
    finally:
        subprocess.run(["chattr", "-i", str(cache)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "ro.sqlite" in result.stderr
    assert cache.read_bytes() == before


# -- bad lines that are skipped: named in the log and listed in the report ----------------------------------

FAKE_MODEL_CLI = """
import sys
import memtui.embed.model
from tests.support.executors import FakeExecutor


class FakeEmbedder(FakeExecutor):
    model_id = "fake/model"

    def __init__(self, _model=None, **_kwargs):
        super().__init__()

    def check(self):
        pass


memtui.embed.model.Embedder = FakeEmbedder
from memtui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_skipped_bad_lines_are_named_in_the_log_and_listed_in_the_report(tmp_path):
    """Through the CLI (its model swapped for the fast fake): every bad line counted, the first named."""
    from memtui.jobs.input import MAX_LINE_BYTES

    good = [json.loads(GOOD_LINE) | {"response": f"answer {i}"} for i in range(4)]
    over_long = json.dumps(good[0] | {"response": "z" * MAX_LINE_BYTES}).encode()
    data = (
        b"\n".join(
            [
                json.dumps(good[0]).encode(),
                b"{oops",
                json.dumps(good[1]).encode(),
                b"[1, 2]",
                over_long,
                b'{"domain": "a.com", "model": "x", "response": "y"}',
                json.dumps(good[2]).encode(),
                b"\xff\xfe",
                json.dumps(good[3]).encode(),
            ]
        )
        + b"\n"
    )
    source = write(tmp_path / "in.jsonl", data)
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FAKE_MODEL_CLI,
            "run",
            "--headless",
            "--input",
            str(source),
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=memtui_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["status"] == "success" and report["items"] == 4 and report["bad_lines"] == 5
    assert report["bad_line_details"] == [
        {"line": 2, "reason": "malformed JSON (Expecting property name enclosed in double quotes at column 2)"},
        {"line": 4, "reason": "expected a JSON object, got list"},
        {"line": 5, "reason": "longer than 16MB, the most memtui reads per line"},
        {"line": 6, "reason": "missing field 'prompt_type'"},
        {"line": 8, "reason": "not valid UTF-8 (byte 0xff at column 1)"},
    ]
    assert (
        "⚠️ 5 bad input line(s) skipped: line 2: malformed JSON (Expecting property name enclosed in double "
        "quotes at column 2); line 4: expected a JSON object, got list; line 5: longer than 16MB, the most "
        "memtui reads per line; ..."
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_clean_input_reports_no_bad_line_details(tmp_path):
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FAKE_MODEL_CLI,
            "run",
            "--headless",
            "--input",
            str(write_input(tmp_path / "in.jsonl", domains=2, per_domain=9)),
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=memtui_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["bad_lines"] == 0 and report["bad_line_details"] == []
    assert "bad input line" not in result.stderr
