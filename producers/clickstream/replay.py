"""Replay JSON-lines clickstream files into Kafka, byte for byte.

Grain: one Kafka message per non-blank line. Lines are sent exactly as stored, without the
line ending: a malformed line must still reach the topic, so that the stream's quarantine
sees it just as it would in production. A line that parses as a JSON object with a
``session_id`` is keyed by it, as the live producer does; any other line gets no key, and
the caller hears of it (file, line number, why) so that a bad file is not replayed unnoticed.

Sources are a local file or folder (searched recursively, hidden entries skipped) or an
``s3://bucket/prefix`` URL (the ``s3`` extra). Files named ``*.jsonl`` or ``*.json``,
optionally ``.gz``-compressed, are read in sorted path order, so a folder of time-named
files replays in time order.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from producers.clickstream.producer import DeliveryStats
from shopstream.errors import ShopstreamError

SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
S3_INSTALL_HINT = "pip install 'shopstream[s3]'"

_CHUNK = 1024 * 1024
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class RawSink(Protocol):
    """Where replayed lines go; ``ClickstreamProducer`` in production."""

    def send_raw(self, value: bytes, key: bytes | None = None) -> None: ...

    def flush(self, timeout: float = 30.0) -> DeliveryStats: ...


@dataclass(frozen=True)
class S3Options:
    """Where and as whom to read ``s3://`` sources; None means boto3's own defaults.

    The command fills it from the lake's S3 settings (``SHOPSTREAM_S3_*``): one place for
    the endpoint and credentials.
    """

    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    path_style: bool = True


@dataclass(frozen=True)
class ReplaySource:
    """One file to replay: its display name, stored size in bytes and how to open it."""

    name: str
    size: int
    opener: Callable[[], Any]

    @property
    def is_gzipped(self) -> bool:
        return self.name.lower().endswith(".gz")


@dataclass(frozen=True)
class ReplayResult:
    files: int
    lines: int
    #: Lines sent without a key because they did not parse to an object with a session_id.
    unkeyed: int
    bytes_read: int
    elapsed_s: float
    stats: DeliveryStats

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.elapsed_s if self.elapsed_s > 0 else 0.0


def is_replayable(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def list_sources(path: str, s3: S3Options | None = None) -> list[ReplaySource]:
    """The files under ``path`` (a local path or an ``s3://`` URL), in replay order.

    Raises ``ShopstreamError`` (exit code 2) for a missing path, a bad URL or no files.
    """
    if _URL.match(path):
        sources = _s3_sources(path, s3 or S3Options())
    else:
        sources = _local_sources(Path(path).expanduser())
    if not sources:
        raise ShopstreamError(f"no {'/'.join(SUFFIXES)} files under {path}", exit_code=2)
    return sources


def _local_sources(root: Path) -> list[ReplaySource]:
    if not root.exists():
        raise ShopstreamError(f"no such file or folder: {root}", exit_code=2)
    if root.is_file():
        if not is_replayable(root.name):
            raise ShopstreamError(f"{root} is not a {'/'.join(SUFFIXES)} file", exit_code=2)
        files = [root]
    else:
        files = sorted(
            (
                p
                for p in root.rglob("*")
                if p.is_file()
                and is_replayable(p.name)
                # Hidden files are usually partial writes (.part, editors' swap files).
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ),
            key=lambda p: p.relative_to(root).as_posix(),
        )
    return [ReplaySource(str(p), p.stat().st_size, partial(p.open, "rb")) for p in files]


def _s3_sources(url: str, options: S3Options) -> list[ReplaySource]:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("s3", "s3a"):
        raise ShopstreamError(
            f"unsupported URL {url!r}: give a local folder or s3://bucket/prefix", exit_code=2
        )
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise ShopstreamError(f"bad S3 URL {url!r}: no bucket (s3://bucket/prefix)", exit_code=2)
    # boto3 is the optional `s3` extra: imported only for an s3:// source.
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ShopstreamError(
            f"reading {url} needs the s3 extra: {S3_INSTALL_HINT}", exit_code=2
        ) from None

    client = boto3.client(
        "s3",
        endpoint_url=options.endpoint_url or None,
        aws_access_key_id=options.access_key or None,
        aws_secret_access_key=options.secret_key or None,
        region_name=options.region or None,
        config=Config(s3={"addressing_style": "path" if options.path_style else "auto"}),
    )
    single_object = is_replayable(prefix)
    if prefix and not single_object and not prefix.endswith("/"):
        # A prefix names a folder: "s3://b/day=1" must not also pick up "day=10/...".
        prefix += "/"
    sources: list[ReplaySource] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if single_object and key != prefix:
                    continue
                if not is_replayable(key.rsplit("/", 1)[-1]):
                    continue
                sources.append(
                    ReplaySource(
                        f"s3://{bucket}/{key}",
                        int(obj.get("Size", 0)),
                        partial(_open_s3_object, client, bucket, key),
                    )
                )
    except (BotoCoreError, ClientError) as exc:
        raise ShopstreamError(f"cannot list {url}: {exc}") from None
    if single_object and not sources:
        raise ShopstreamError(f"no such S3 object: {url}", exit_code=2)
    return sorted(sources, key=lambda s: s.name)


def _open_s3_object(client: Any, bucket: str, key: str) -> Any:
    # The optional `s3` extra, present once `_s3_client` made ``client``.
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"]
    except (BotoCoreError, ClientError) as exc:
        # Listed a moment ago, gone or unreadable now.
        raise ShopstreamError(f"cannot read s3://{bucket}/{key}: {exc}") from None


class _CountingReader:
    """Reports the stored bytes read (compressed ones for .gz), for an honest progress bar."""

    def __init__(self, raw: _Readable, on_bytes: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def seek(self, offset: int, /) -> int:
        # GzipFile only seeks to rewind, which a forward-only replay never does.
        raise io.UnsupportedOperation("replay sources are read forward only")

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return data


def read_lines(
    source: ReplaySource, on_bytes: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The non-blank lines of one source, as raw bytes without the line ending.

    Only ``\\n`` ends a line (plus a ``\\r`` before it), so bytes that are not valid UTF-8
    pass through untouched. ``on_bytes(n)`` is told about each read of the stored file.
    """
    for _, line in numbered_lines(source, on_bytes):
        yield line


def numbered_lines(
    source: ReplaySource, on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, bytes]]:
    """:func:`read_lines` with each line's number in its file (1-based, blank lines counted)."""
    raw = source.opener()
    try:
        counted = _CountingReader(raw, on_bytes)
        stream: _Readable = (
            gzip.GzipFile(fileobj=counted, mode="rb") if source.is_gzipped else counted
        )
        pending = b""
        number = 0
        try:
            while chunk := stream.read(_CHUNK):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    number += 1
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if line and not line.isspace():
                        yield number, line
        except (OSError, EOFError, zlib.error) as exc:
            raise ShopstreamError(f"cannot read {source.name}: {exc}") from None
        if pending.endswith(b"\r"):
            pending = pending[:-1]
        if pending and not pending.isspace():
            yield number + 1, pending
    finally:
        raw.close()


def keyed(line: bytes) -> tuple[bytes | None, str]:
    """The Kafka key for a line and, when there is none, why: ``(key, "")`` or
    ``(None, reason)``. The key is the ``session_id`` of a line that parses as a JSON object."""
    try:
        obj = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (ValueError, RecursionError):
        return None, "not JSON"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    session_id = obj.get("session_id")
    if isinstance(session_id, str) and session_id:
        return session_id.encode(), ""
    if isinstance(session_id, int) and not isinstance(session_id, bool):
        return str(session_id).encode(), ""
    return None, "no session_id"


def session_key(line: bytes) -> bytes | None:
    """The Kafka key for a line: its ``session_id`` when it parses as a JSON object, else None."""
    return keyed(line)[0]


def replay(
    sources: Sequence[ReplaySource],
    producer: RawSink,
    *,
    rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    flush_timeout: float = 30.0,
    on_unkeyed: Callable[[str, int, str], None] | None = None,
) -> ReplayResult:
    """Send every line of ``sources`` in order; ``rate`` caps lines per second.

    ``progress(bytes_read, lines_sent)`` is called every few thousand lines and after each
    file; ``on_unkeyed(source, line_number, reason)`` for each line sent without a key (the
    line still goes: the stream's quarantine is where a bad event belongs). Failed
    deliveries are counted in the result, not raised: the caller decides.
    """
    if rate is not None and rate <= 0:
        raise ShopstreamError(f"--rate must be positive, got {rate:g}", exit_code=2)
    started = time.monotonic()
    lines = unkeyed = bytes_read = 0

    def count(n: int) -> None:
        nonlocal bytes_read
        bytes_read += n

    for source in sources:
        for number, line in numbered_lines(source, count):
            if rate is not None:
                # Pace against the start, not the previous line, so sleeps don't drift.
                ahead = started + lines / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            key, why = keyed(line)
            if key is None:
                unkeyed += 1
                if on_unkeyed is not None:
                    on_unkeyed(source.name, number, why)
            producer.send_raw(line, key)
            lines += 1
            if progress is not None and lines % 2000 == 0:
                progress(bytes_read, lines)
        if progress is not None:
            progress(bytes_read, lines)
    stats = producer.flush(flush_timeout)
    return ReplayResult(
        files=len(sources),
        lines=lines,
        unkeyed=unkeyed,
        bytes_read=bytes_read,
        elapsed_s=time.monotonic() - started,
        stats=stats,
    )
