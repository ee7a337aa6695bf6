"""Reading replay sources: which files, in which order, and the lines byte for byte."""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import pytest

from producers.clickstream.producer import DeliveryStats
from producers.clickstream.replay import (
    S3_INSTALL_HINT,
    keyed,
    list_sources,
    read_lines,
    replay,
    session_key,
)
from shopstream.errors import ShopstreamError

GOOD = b'{"event_id":"e1","session_id":"s-1","event_type":"page_view"}'
BAD_UTF8 = b'{"session_id":"s-2","page_url":"\xff\xfe"}'
TRUNCATED = b'{"session_id":"s-3","event_ty'


class RecordingSink:
    """Collects what replay sends, in order, like a broker that accepts everything."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.sent_at: list[float] = []

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((key, value))
        self.sent_at.append(time.monotonic())

    def flush(self, timeout: float = 30.0) -> DeliveryStats:
        return DeliveryStats(delivered=len(self.sent))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "b").mkdir()
    (tmp_path / ".tmp").mkdir()
    (tmp_path / "a.jsonl").write_bytes(GOOD + b"\n" + BAD_UTF8 + b"\r\n\n   \n" + TRUNCATED)
    with gzip.open(tmp_path / "b" / "c.json.gz", "wb") as fh:
        fh.write(b'{"session_id":"s-4"}\n[1,2]\n')
    (tmp_path / "b" / "d.jsonl").write_bytes(b'{"session_id":"s-5","n":1}\n')
    (tmp_path / "z.json").write_bytes(b'{"session_id":"s-6"}\n')
    (tmp_path / "ignored.txt").write_bytes(b'{"session_id":"nope"}\n')
    (tmp_path / ".hidden.jsonl").write_bytes(b'{"session_id":"nope"}\n')
    (tmp_path / ".tmp" / "partial.jsonl").write_bytes(b'{"session_id":"nope"}\n')
    return tmp_path


def test_folder_lists_json_lines_files_recursively_in_sorted_order(folder: Path) -> None:
    names = [Path(s.name).relative_to(folder).as_posix() for s in list_sources(str(folder))]
    assert names == ["a.jsonl", "b/c.json.gz", "b/d.jsonl", "z.json"]


def test_lines_come_back_byte_for_byte_including_malformed_ones(folder: Path) -> None:
    sources = list_sources(str(folder))
    lines = [line for s in sources for line in read_lines(s)]
    assert lines == [
        GOOD,
        BAD_UTF8,
        TRUNCATED,
        b'{"session_id":"s-4"}',
        b"[1,2]",
        b'{"session_id":"s-5","n":1}',
        b'{"session_id":"s-6"}',
    ]


def test_a_single_file_is_a_source_too(folder: Path) -> None:
    (source,) = list_sources(str(folder / "b" / "c.json.gz"))
    assert source.is_gzipped
    read: list[int] = []
    assert list(read_lines(source, read.append)) == [b'{"session_id":"s-4"}', b"[1,2]"]
    assert sum(read) == source.size  # progress counts stored (compressed) bytes


def test_long_lines_span_read_chunks(tmp_path: Path) -> None:
    long_line = b'{"session_id":"s-1","blob":"' + b"x" * 3_000_000 + b'"}'
    (tmp_path / "big.jsonl").write_bytes(b"1\n" + long_line + b"\n2")
    (source,) = list_sources(str(tmp_path))
    assert list(read_lines(source)) == [b"1", long_line, b"2"]


@pytest.mark.parametrize(
    ("line", "key"),
    [
        (GOOD, b"s-1"),
        (b'{"session_id": 77}', b"77"),
        (BAD_UTF8, None),
        (TRUNCATED, None),
        (b"[1,2]", None),
        (b'{"session_id": null}', None),
        (b'{"session_id": true}', None),
        (b'{"event_id": "e1"}', None),
        (b"[" * 100_000, None),
    ],
)
def test_lines_are_keyed_by_session_id_only_when_they_parse(line: bytes, key: bytes | None) -> None:
    assert session_key(line) == key


def test_replay_sends_every_line_in_order_with_keys(folder: Path) -> None:
    sink = RecordingSink()
    progress: list[tuple[int, int]] = []
    result = replay(
        list_sources(str(folder)),
        sink,
        progress=lambda done, lines: progress.append((done, lines)),
    )
    assert sink.sent == [
        (b"s-1", GOOD),
        (None, BAD_UTF8),
        (None, TRUNCATED),
        (b"s-4", b'{"session_id":"s-4"}'),
        (None, b"[1,2]"),
        (b"s-5", b'{"session_id":"s-5","n":1}'),
        (b"s-6", b'{"session_id":"s-6"}'),
    ]
    assert (result.files, result.lines, result.unkeyed) == (4, 7, 3)
    assert result.stats.delivered == 7
    assert progress[-1] == (sum(s.size for s in list_sources(str(folder))), 7)


def test_lines_without_a_key_are_reported_by_file_line_and_reason(folder: Path) -> None:
    reported: list[tuple[str, int, str]] = []
    sink = RecordingSink()
    result = replay(
        list_sources(str(folder)),
        sink,
        on_unkeyed=lambda source, number, why: reported.append(
            (Path(source).relative_to(folder).as_posix(), number, why)
        ),
    )
    # Line numbers count the blank lines a file holds; every line is still sent.
    assert reported == [
        ("a.jsonl", 2, "not UTF-8"),
        ("a.jsonl", 5, "not JSON"),
        ("b/c.json.gz", 2, "not a JSON object"),
    ]
    assert len(reported) == result.unkeyed
    assert len(sink.sent) == result.lines == 7


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (GOOD, ""),
        (b'{"event_id": "e1"}', "no session_id"),
        (b'{"session_id": ""}', "no session_id"),
        (b"42", "not a JSON object"),
        (TRUNCATED, "not JSON"),
        (BAD_UTF8, "not UTF-8"),
    ],
)
def test_a_line_without_a_key_says_why(line: bytes, why: str) -> None:
    assert keyed(line)[1] == why


def test_rate_caps_lines_per_second(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"".join(b'{"session_id":"s"}\n' for _ in range(30)))
    sink = RecordingSink()
    replay(list_sources(str(tmp_path)), sink, rate=100.0)
    # 30 lines at 100/s: the last one is due 0.29 s after the first.
    assert sink.sent_at[-1] - sink.sent_at[0] >= 0.27


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ShopstreamError, match="no such file or folder") as caught:
        list_sources(str(tmp_path / "nope"))
    assert caught.value.exit_code == 2


def test_folder_without_json_lines_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ShopstreamError, match=r"no \.jsonl/\.json/.* files under") as caught:
        list_sources(str(tmp_path))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x", "unsupported URL"),
        ("s3:///prefix", "no bucket"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, message: str) -> None:
    with pytest.raises(ShopstreamError, match=message) as caught:
        list_sources(url)
    assert caught.value.exit_code == 2


def test_s3_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(ShopstreamError) as caught:
        list_sources("s3://bucket/clickstream/2024")
    assert S3_INSTALL_HINT in str(caught.value)
    assert S3_INSTALL_HINT == "pip install 'shopstream[s3]'"


def test_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(5000)))
    (tmp_path / "a.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (source,) = list_sources(str(tmp_path))
    with pytest.raises(ShopstreamError, match=r"cannot read .*a\.jsonl\.gz"):
        list(read_lines(source))
