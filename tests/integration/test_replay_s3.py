"""`shopstream clickstream replay s3://…`: from a real S3 API into the real topic.

moto's S3 server runs in-process on 127.0.0.1 (a free port, so runs never collide) and the
command runs as a subprocess with the lake's S3 settings (``SHOPSTREAM_S3_*``) pointing at
it: the one place for S3 credentials is what is under test. Kafka is the test stack's.

The topic is shared with other tests, so the test notes the end offsets first and only
looks at messages after them that carry its own token.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shopstream.kafka_io import end_offsets, read_from
from shopstream.settings import Settings
from shopstream.topics import CLICKSTREAM_TOPIC, ensure_topics
from tests.command_line import one_error_line, run_shopstream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# moto accepts any keys; these only prove that the settings reach boto3.
ACCESS_KEY = "shopstream-replay-access"
SECRET_KEY = "shopstream-replay-secret"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; stopped afterwards."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def _replay(url: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "SHOPSTREAM_S3_ENDPOINT": endpoint,
        "SHOPSTREAM_S3_ACCESS_KEY": ACCESS_KEY,
        "SHOPSTREAM_S3_SECRET_KEY": SECRET_KEY,
        "SHOPSTREAM_S3_REGION": "us-east-1",
        # No ~/.aws files: only the settings may supply credentials.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "COLUMNS": "400",
    }
    return run_shopstream(["clickstream", "replay", url, "--no-progress"], env)


def test_replay_from_s3_sends_every_line_and_reports_the_malformed_one(
    stack: Settings, s3_endpoint: str
) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    token = uuid.uuid4().hex
    bucket = f"clicks-{token[:12]}"
    s3 = _client(s3_endpoint)
    s3.create_bucket(Bucket=bucket)

    good = [
        json.dumps({"session_id": f"{token}-{n % 5}", "event_type": "page_view", "n": n}).encode()
        for n in range(60)
    ]
    malformed = f'{{"session_id":"{token}-0","event_ty'.encode()  # cut off mid-write
    # The malformed line sits in the middle of the first file: what follows must still go.
    part0 = [*good[:10], malformed, *good[10:30]]
    s3.put_object(Bucket=bucket, Key="day=2026-12-05/part-0.jsonl", Body=b"\n".join(part0) + b"\n")
    s3.put_object(
        Bucket=bucket,
        Key="day=2026-12-05/part-1.jsonl.gz",
        Body=gzip.compress(b"\n".join(good[30:]) + b"\n"),
    )
    # Neither is replayed: not a JSON-lines name, and another prefix that merely starts alike.
    s3.put_object(Bucket=bucket, Key="day=2026-12-05/_SUCCESS", Body=b"")
    stray = json.dumps({"session_id": f"{token}-stray"}).encode()
    s3.put_object(Bucket=bucket, Key="day=2026-12-050/part-0.jsonl", Body=stray + b"\n")

    start = end_offsets(bootstrap, CLICKSTREAM_TOPIC)
    result = _replay(f"s3://{bucket}/day=2026-12-05", s3_endpoint)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "replayed 61 lines from 2 file(s)" in result.stdout
    assert "delivered 61, failed 0, without session key 1" in result.stdout
    # The malformed line is reported by file and line, and sent on like every other.
    assert result.stderr.strip().splitlines() == [
        f"warning: s3://{bucket}/day=2026-12-05/part-0.jsonl line 11: not JSON; "
        "sent as-is without a key"
    ]

    end = end_offsets(bootstrap, CLICKSTREAM_TOPIC)
    landed = [
        r
        for r in read_from(
            bootstrap,
            CLICKSTREAM_TOPIC,
            start,
            until=lambda records: len(records) >= sum(end.values()) - sum(start.values()),
            timeout_s=60,
        )
        if r.value is not None and token.encode() in r.value
    ]
    assert Counter(r.value for r in landed) == Counter([*part0, *good[30:]])
    for r in landed:
        expected = json.loads(r.value or b"")["session_id"].encode() if r.value in good else None
        assert r.key == expected
    # One session's lines keep their order across the two objects (one key, one partition).
    in_order = sorted(landed, key=lambda r: (r.partition, r.offset))
    for k in range(5):
        key = f"{token}-{k}".encode()
        sent = [line for line in good if json.loads(line)["session_id"].encode() == key]
        assert [r.value for r in in_order if r.key == key] == sent


def test_replay_of_a_missing_object_is_one_line_and_sends_nothing(
    stack: Settings, s3_endpoint: str
) -> None:
    bootstrap = stack.bootstrap_servers
    ensure_topics(bootstrap)
    bucket = f"clicks-{uuid.uuid4().hex[:12]}"
    s3 = _client(s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="day=1/part-0.jsonl", Body=b'{"session_id":"s"}\n')
    start = end_offsets(bootstrap, CLICKSTREAM_TOPIC)

    missing = f"s3://{bucket}/day=1/part-9.jsonl"
    line = one_error_line(_replay(missing, s3_endpoint), 2)
    assert line == f"error: no such S3 object: {missing}"

    line = one_error_line(_replay(f"s3://{bucket}/day=2", s3_endpoint), 2)
    assert line.startswith(f"error: no .jsonl/.json/.jsonl.gz/.json.gz files under s3://{bucket}/")

    line = one_error_line(_replay("s3://no-such-bucket-here/day=1", s3_endpoint), 1)
    assert "cannot list s3://no-such-bucket-here/day=1" in line and "NoSuchBucket" in line

    assert end_offsets(bootstrap, CLICKSTREAM_TOPIC) == start
