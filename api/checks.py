"""Readiness probes that reach outside the ops database: Kafka and the lake root.

Each result is cached for a few seconds, so a burst of /readyz calls (a load balancer, a
dashboard) costs one probe, and a probe runs in a thread because the clients block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from api.models import Check
from shopstream.settings import ApiSettings

log = logging.getLogger("api.checks")


class CachedProbe:
    """A blocking probe run at most once per ``cache_s``."""

    def __init__(self, cache_s: float = 5.0) -> None:
        self.cache_s = cache_s
        self._result: Check | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def probe(self) -> Check:
        raise NotImplementedError

    async def check(self) -> Check:
        async with self._lock:
            if self._result is None or time.monotonic() - self._at > self.cache_s:
                self._result = await asyncio.to_thread(self.probe)
                self._at = time.monotonic()
            return self._result


class KafkaProbe(CachedProbe):
    """The brokers answer a metadata request within ``timeout_s``."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 2.0, cache_s: float = 5.0):
        super().__init__(cache_s)
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self._admin: AdminClient | None = None

    def probe(self) -> Check:
        try:
            if self._admin is None:
                conf: dict[str, Any] = {
                    "bootstrap.servers": self.bootstrap_servers,
                    "client.id": "shopstream-api-readyz",
                    # librdkafka's own retry chatter goes to logging, not stderr.
                    "logger": logging.getLogger("api.kafka"),
                }
                self._admin = AdminClient(conf)
            metadata = self._admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            return Check(ok=False, detail=f"Kafka at {self.bootstrap_servers}: {exc}")
        return Check(
            ok=True,
            detail=f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topics "
            f"at {self.bootstrap_servers}",
        )


class LakeProbe(CachedProbe):
    """The lake root exists (a local folder) or its bucket answers (``s3a://``)."""

    def __init__(self, settings: ApiSettings, cache_s: float = 5.0):
        super().__init__(cache_s)
        self.settings = settings

    def probe(self) -> Check:
        root = self.settings.lake_path
        if "://" not in root:
            if Path(root).is_dir():
                return Check(ok=True, detail=f"lake root {root}")
            return Check(ok=False, detail=f"lake root {root} does not exist")
        return self._probe_bucket(root)

    def _probe_bucket(self, root: str) -> Check:
        parts = urlparse(root)
        if parts.scheme not in ("s3a", "s3"):
            return Check(ok=False, detail=f"lake root {root}: unsupported scheme")
        # boto3 is the optional `s3` extra: imported only for an s3:// lake.
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            return Check(
                ok=False, detail="an s3a:// lake needs boto3: pip install 'shopstream[s3]'"
            )
        s = self.settings
        client = boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint or None,
            region_name=s.s3_region or None,
            aws_access_key_id=s.s3_access_key.get_secret_value() or None,
            aws_secret_access_key=s.s3_secret_key.get_secret_value() or None,
            config=Config(
                connect_timeout=2,
                read_timeout=2,
                retries={"max_attempts": 1},
                s3={"addressing_style": "path" if s.s3_path_style_access else "auto"},
            ),
        )
        try:
            client.head_bucket(Bucket=parts.netloc)
        except (BotoCoreError, ClientError) as exc:
            return Check(ok=False, detail=f"lake bucket {parts.netloc}: {exc}")
        return Check(ok=True, detail=f"lake bucket {parts.netloc} answers")
