import pytest

from memtui.memory.units import GB, MB, format_bytes, format_duration, format_gb, gb_to_bytes, parse_gb, to_gb


def test_gb_is_binary():
    assert GB == 2**30
    assert MB == 2**20


@pytest.mark.parametrize(
    "n_bytes, text",
    [
        (int(1.5 * GB), "1.50GB"),
        (int(0.85 * GB), "0.85GB"),
        (int(1.12 * GB), "1.12GB"),
        (0, "0.00GB"),
    ],
)
def test_format_gb(n_bytes, text):
    assert format_gb(n_bytes) == text


def test_format_gb_digits():
    assert format_gb(int(0.9412 * GB), digits=3) == "0.941GB"


@pytest.mark.parametrize(
    "n_bytes, text",
    [
        (512, "512B"),
        (1536, "1.5KB"),
        (300 * MB, "300.0MB"),
        (8 * GB, "8.0GB"),
        (3 * 1024 * GB, "3.0TB"),
        (5000 * 1024 * GB, "5000.0TB"),
    ],
)
def test_format_bytes(n_bytes, text):
    assert format_bytes(n_bytes) == text


def test_round_trip():
    assert gb_to_bytes(1.5) == 3 * GB // 2
    assert to_gb(gb_to_bytes(0.75)) == pytest.approx(0.75)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.5", 1.5),
        ("1.5GB", 1.5),
        (" 1.5 gb ", 1.5),
        ("2GiB", 2.0),
        ("2g", 2.0),
        ("800MB", 800 / 1024),
        ("512m", 0.5),
        ("512 MiB", 0.5),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_parse_gb(text, expected):
    assert parse_gb(text) == pytest.approx(expected)


def test_parse_percent_of_limit():
    assert parse_gb("75%", limit_bytes=8 * GB) == pytest.approx(6.0)
    assert parse_gb("12.5 %", limit_bytes=2 * GB) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("75%", "no memory limit is known"),
        ("abc", "not a memory size"),
        ("", "not a memory size"),
        ("GB", "not a memory size"),
        ("1.5TB", "not a memory size"),
    ],
)
def test_parse_errors_name_the_setting(text, needle):
    with pytest.raises(ValueError) as info:
        parse_gb(text, what="--max-memory")
    message = str(info.value)
    assert message.startswith("--max-memory: ")
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["0%", "150%", "-5%"])
def test_parse_percent_out_of_range(text):
    with pytest.raises(ValueError, match="between 0 and 100"):
        parse_gb(text, limit_bytes=8 * GB, what="x")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (0, "0s"),
        (42.4, "42s"),
        (187, "3m07s"),
        (7500, "2h05m"),
        (47 * 3600 + 59 * 60, "47h59m"),
        (2 * 86400, "2d00h"),
        (556_320, "6d10h"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
