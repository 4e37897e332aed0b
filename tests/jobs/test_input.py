from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memtui.errors import InputError
from memtui.jobs import input as input_mod
from memtui.jobs.input import MAX_LINE_BYTES, BadLine, InputStats, count_input, read_domains


def row(domain: str, model: str = "claude", prompt_type: str = "trust", text: str | None = None, **extra) -> dict:
    return {
        "domain": domain,
        "model": model,
        "prompt_type": prompt_type,
        "response": text if text is not None else f"{model} on {domain} ({prompt_type})",
        **extra,
    }


def lines(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def many_rows(domains: int, per_domain: int = 9) -> list[dict]:
    models, prompts = ("claude", "gpt", "gemini"), ("trust", "risk", "ethics")
    return [
        row(f"d{d:03}", models[i % 3], prompts[i // 3 % 3], f"domain {d} answer {i} " + "word " * (i % 7))
        for d in range(domains)
        for i in range(per_domain)
    ]


def test_groups_follow_contiguous_domains_and_a_reappearing_domain_is_another_group(tmp_path):
    rows = [row("a"), row("a", "gpt"), row("b"), row("a", "gemini")]
    stats = InputStats()
    groups = list(read_domains(write(tmp_path / "r.jsonl", lines(rows)), stats=stats))
    assert [(g.domain, len(g.responses)) for g in groups] == [("a", 2), ("b", 1), ("a", 1)]
    assert [r.line for g in groups for r in g.responses] == [1, 2, 3, 4]
    assert groups[0].responses[1].model == "gpt"
    assert (stats.lines, stats.responses, stats.domains, stats.bad_lines, stats.repeated_domains) == (4, 4, 3, 0, 1)


def test_reader_streams_a_group_before_the_rest_of_the_file_exists(tmp_path):
    """Through a FIFO: the first group must arrive while the writer still holds the rest back."""
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    first_group_seen = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as fh:
            fh.write(lines([row("a"), row("a", "gpt"), row("b")]))
            fh.flush()
            first_group_seen.wait(timeout=10)
            fh.write(lines([row("b", "gpt"), row("c")]))

    thread = threading.Thread(target=writer)
    thread.start()
    groups = read_domains(fifo)
    first = next(groups)
    streamed = not first_group_seen.is_set()
    first_group_seen.set()
    rest = list(groups)
    thread.join()
    assert streamed and first.domain == "a"
    assert [(g.domain, len(g.responses)) for g in rest] == [("b", 2), ("c", 1)]


BAD_LINES = [
    (b'{"domain": "a", "model": "claude"', "malformed JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (json.dumps({"domain": "a", "prompt_type": "t", "response": "x"}).encode(), "missing field 'model'"),
    (json.dumps(row("a", model=7)).encode(), "field 'model' must be a string, got int"),
    (json.dumps(row("a", prompt_type="")).encode(), "empty field 'prompt_type'"),
    (json.dumps(row("a", text="   ")).encode(), "empty field 'response'"),
    (b'{"domain": "a", "model": "claude", "prompt_type": "t", "response": "caf\xe9"}', "not valid UTF-8"),
    (json.dumps(row("a", id=[1])).encode(), "field 'id' must be"),
    (json.dumps(row("a", text="half \udc80 a pair")).encode(), "field 'response' holds an unpaired surrogate"),
]


def test_every_kind_of_bad_line_is_counted_named_and_skipped(tmp_path):
    good = json.dumps(row("a")).encode()
    data = b"\n".join([good] + [bad for bad, _ in BAD_LINES] + [b"", good.replace(b"claude", b"gpt")]) + b"\n"
    path = write(tmp_path / "responses.jsonl", data)
    stats = InputStats()
    groups = list(read_domains(path, stats=stats))
    assert [(g.domain, [r.model for r in g.responses]) for g in groups] == [("a", ["claude", "gpt"])]
    assert stats.bad_lines == len(BAD_LINES) and stats.responses == 2
    assert [bad.line for bad in stats.bad_details] == list(range(2, 2 + len(BAD_LINES)))
    for bad, (_, reason) in zip(stats.bad_details, BAD_LINES):
        assert reason in bad.reason and "\n" not in bad.reason and str(path) not in bad.reason, bad
        assert str(bad) == f"line {bad.line}: {bad.reason}"
        assert bad.as_dict() == {"line": bad.line, "reason": bad.reason}


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""], ids=["lf", "crlf", "none"])
def test_a_bad_line_is_located_in_the_line_not_after_its_ending(tmp_path, ending):
    path = write(tmp_path / "r.jsonl", b'{"domain": "a", "model": "claude"' + ending)
    stats = InputStats()
    list(read_domains(path, stats=stats))
    assert stats.bad_details == [BadLine(1, "malformed JSON (Expecting ',' delimiter at column 34)")]


def test_bad_line_details_keep_the_first_hundred_and_count_them_all(tmp_path):
    path = write(tmp_path / "r.jsonl", lines([row("a")]) + b"{oops\n" * 250)
    stats = InputStats()
    list(read_domains(path, stats=stats))
    assert stats.bad_lines == 250 and len(stats.bad_details) == input_mod.MAX_BAD_DETAILS == 100
    assert stats.bad_details[0] == BadLine(
        2, "malformed JSON (Expecting property name enclosed in double quotes at column 2)"
    )
    assert stats.bad_details[-1].line == 101


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES[:1] + BAD_LINES[6:7])
def test_strict_raises_on_the_first_bad_line_naming_file_and_line(tmp_path, bad, reason):
    path = write(tmp_path / "responses.jsonl", lines([row("a"), row("b")]) + bad + b"\n" + lines([row("c")]))
    groups = read_domains(path, strict=True)
    with pytest.raises(InputError) as err:
        list(groups)
    message = str(err.value)
    assert message.startswith(f"{path}:3: ") and reason in message and "--strict" in message
    assert "\n" not in message


def test_ids_explicit_kept_missing_derived_stably_and_duplicates_kept_apart(tmp_path):
    rows = [row("a", id="r1"), row("a", id=42), row("a", text="same"), row("a", text="same"), row("a", "gpt")]
    path = write(tmp_path / "r.jsonl", lines(rows))
    ids = [r.id for g in read_domains(path) for r in g.responses]
    assert ids[:2] == ["r1", "42"]
    assert len(set(ids)) == 5 and ids[3] == ids[2] + "-2"
    # Stable across reads and across an edit that shifts line numbers.
    shifted = write(tmp_path / "s.jsonl", lines([row("z")] + rows))
    assert [r.id for g in read_domains(shifted) for r in g.responses][1:] == ids


def test_gzip_is_detected_by_magic_bytes_not_by_suffix(tmp_path):
    rows = many_rows(3)
    hidden_gz = write(tmp_path / "looks-plain.jsonl", gzip.compress(lines(rows)))
    plain_named_gz = write(tmp_path / "looks-gz.jsonl.gz", lines(rows))
    for path in (hidden_gz, plain_named_gz):
        assert [len(g.responses) for g in read_domains(path)] == [9, 9, 9]
    assert count_input(hidden_gz) == (3, 27)


def test_truncated_gzip_yields_complete_groups_then_names_file_and_line(tmp_path):
    blob = gzip.compress(lines(many_rows(200)), compresslevel=1)
    path = write(tmp_path / "cut.jsonl.gz", blob[: len(blob) // 2])
    stats = InputStats()
    got = []
    with pytest.raises(InputError) as err:
        for group in read_domains(path, stats=stats):
            got.append(group)
    assert got and all(len(g.responses) == 9 for g in got)  # the cut group is never yielded
    assert str(err.value).startswith(f"{path}: gzip stream is corrupt or truncated after line {stats.lines}")
    assert stats.lines > 9 * len(got)
    # The pre-scan counts what it can instead of failing; the real read reports the cut.
    domains, responses = count_input(path)
    assert domains >= len(got) and responses == stats.responses


def test_skip_drops_done_domains_but_counts_them(tmp_path):
    path = write(tmp_path / "r.jsonl", lines(many_rows(4)))
    stats = InputStats()
    groups = list(read_domains(path, stats=stats, skip=lambda d: d in {"d001", "d002"}))
    assert [g.domain for g in groups] == ["d000", "d003"]
    assert (stats.domains, stats.skipped_domains, stats.responses, stats.skipped_responses) == (4, 2, 36, 18)


def test_count_input_matches_the_read(tmp_path):
    path = write(tmp_path / "r.jsonl", lines(many_rows(5)) + b"not json\n")
    assert count_input(path) == (5, 45)


def test_bom_and_crlf_are_tolerated(tmp_path):
    path = write(tmp_path / "r.jsonl", b"\xef\xbb\xbf" + lines([row("a")]).replace(b"\n", b"\r\n"))
    stats = InputStats()
    assert [g.domain for g in read_domains(path, stats=stats)] == ["a"] and stats.bad_lines == 0


def test_missing_file_and_directory_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"no input file at .*nope\.jsonl; check the path"):
        list(read_domains(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="is a directory"):
        list(read_domains(tmp_path))
    with pytest.raises(InputError, match="no input file"):
        count_input(tmp_path / "nope.jsonl")


def test_unreadable_file_is_an_input_error(tmp_path, monkeypatch):
    # Root reads any file whatever its mode, so the permission failure is injected.
    path = write(tmp_path / "r.jsonl", lines([row("a")]))

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(input_mod, "open", denied, raising=False)
    with pytest.raises(InputError, match=r"cannot read .*r\.jsonl: permission denied"):
        list(read_domains(path))


# -- line length: a documented maximum, enforced while reading ---------------------------------------------

MIB = 1 << 20


def over_long(limit: int, extra: int = 1) -> bytes:
    """A valid JSON line whose content is ``limit + extra`` bytes."""
    head = json.dumps(row("a", text="")).encode()[:-2]  # ...'"response": "'
    return head + b"y" * (limit + extra - len(head) - 2) + b'"}'


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_line_at_the_limit_is_read_and_one_byte_more_is_a_bad_line(tmp_path, monkeypatch, gz, ending):
    monkeypatch.setattr(input_mod, "MAX_LINE_BYTES", 300)
    monkeypatch.setattr(input_mod, "CHUNK_BYTES", 7)
    at_limit, too_long = over_long(300, 0), over_long(300, 1)
    assert len(at_limit) == 300 and json.loads(too_long)
    data = ending.join([at_limit, too_long, over_long(300, 5000), json.dumps(row("b")).encode(), too_long]) + ending
    data += json.dumps(row("c")).encode() + ending + too_long  # the last line has no line ending
    path = write(tmp_path / "r.jsonl", gzip.compress(data) if gz else data)
    stats = InputStats()
    groups = list(read_domains(path, stats=stats))
    assert [(g.domain, [r.line for r in g.responses]) for g in groups] == [("a", [1]), ("b", [4]), ("c", [6])]
    assert [b.line for b in stats.bad_details] == [2, 3, 5, 7] and stats.lines == 7
    assert stats.bad_details[0].reason == "longer than 0.000286102MB, the most memtui reads per line"
    with pytest.raises(
        InputError,
        match=r"r\.jsonl:2: longer than .*MB, the most memtui reads per line; fix the line "
        r"or run without --strict",
    ):
        list(read_domains(path, strict=True))


def test_the_limit_is_16_mib_and_a_ten_million_character_response_fits(tmp_path):
    assert MAX_LINE_BYTES == 16 * MIB
    text = "A runaway answer repeats itself. " * 303_031
    path = write(tmp_path / "big.jsonl", lines([row("a", text=text[:10_000_000]), row("b")]))
    stats = InputStats()
    groups = list(read_domains(path, stats=stats))
    assert stats.bad_lines == 0 and len(groups[0].responses[0].text) == 10_000_000


READER_PEAK = """
import json, sys, tracemalloc
from memtui.jobs.input import InputStats, read_domains
tracemalloc.start()
stats = InputStats()
domains = [g.domain for g in read_domains(sys.argv[1], stats=stats)]
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
with open("/proc/self/status") as fh:
    hwm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))
print(json.dumps({"domains": domains, "bad": [b.as_dict() for b in stats.bad_details], "peak": peak, "hwm": hwm}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_40_mib_line_is_skipped_without_ever_being_held_whole(tmp_path, gz):
    """Measured in a child process: tracemalloc's peak and the process's VmHWM stay far below the line."""
    data = lines([row("a")]) + over_long(40 * MIB, 0) + b"\n" + lines([row("b")])
    path = write(tmp_path / "huge.jsonl", gzip.compress(data, compresslevel=1) if gz else data)
    empty = write(tmp_path / "empty.jsonl", lines([row("a")]))
    runs = {}
    for name, source in (("huge", path), ("baseline", empty)):
        proc = subprocess.run(
            [sys.executable, "-c", READER_PEAK, str(source)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).parents[2],
        )
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads(proc.stdout)
    huge = runs["huge"]
    assert huge["domains"] == ["a", "b"]
    assert huge["bad"] == [{"line": 2, "reason": "longer than 16MB, the most memtui reads per line"}]
    # At most MAX_LINE_BYTES (in a bytearray that over-allocates by 1/8) and one read piece are ever alive;
    # never the 40 MiB line, never a joined copy.
    assert huge["peak"] < MAX_LINE_BYTES * 5 // 4 + 2 * MIB, huge
    assert huge["hwm"] - runs["baseline"]["hwm"] < MAX_LINE_BYTES * 3 // 2, runs
