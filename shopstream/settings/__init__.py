"""Typed settings for the shopstream platform: where every service runs and how big it is.

Read from the environment (prefix ``SHOPSTREAM_``) and an optional ``.env`` file. The
``local`` profile (the default) works with no configuration at all: the embedded stack on
127.0.0.1 with its state under ``.state/``. The ``prod`` profile refuses to start without
real secrets, each class for its own.

- ``base``: ``SettingsBase`` (profile, state folder, how values are read, the production
  check) and the placeholder-secret helper;
- ``shared``: a mixin per thing two deployables share (shop DB, ops DB, Kafka, Connect, the
  lake, Spark, the low-stock rule, metrics, Prometheus, freshness, the API's address);
- ``deployables``: one class per deployable (``ProducerSettings``, ``StreamsSettings``,
  ``AlertsSettings``, ``ApiSettings``, ``BatchSettings``, ``QualitySettings``,
  ``StackSettings``) and ``Settings``, their union, for the command line and tests.

The same keys configure the scale-out deployment in ``docker-compose.yml``; a test keeps the
two in step.
"""

from __future__ import annotations

import threading
from typing import TypeVar, overload

from shopstream.settings.base import (
    PLACEHOLDER_SECRETS,
    PROJECT_ROOT,
    SettingsBase,
    is_placeholder,
    real_secret_problem,
)
from shopstream.settings.deployables import (
    AlertsSettings,
    ApiSettings,
    BatchSettings,
    ProducerSettings,
    QualitySettings,
    Settings,
    StackSettings,
    StreamsSettings,
)
from shopstream.settings.shared import (
    ApiAddressSettings,
    ConnectSettings,
    FreshnessSettings,
    JvmSettings,
    KafkaSettings,
    LakeMaintenanceSettings,
    LakeSettings,
    LowStockSettings,
    MetricsPortsSettings,
    MetricsSettings,
    OpsDbSettings,
    PrometheusSettings,
    ShopDbSettings,
    SparkSettings,
)

__all__ = [
    "PLACEHOLDER_SECRETS",
    "PROJECT_ROOT",
    "AlertsSettings",
    "ApiAddressSettings",
    "ApiSettings",
    "BatchSettings",
    "ConnectSettings",
    "FreshnessSettings",
    "JvmSettings",
    "KafkaSettings",
    "LakeMaintenanceSettings",
    "LakeSettings",
    "LowStockSettings",
    "MetricsPortsSettings",
    "MetricsSettings",
    "OpsDbSettings",
    "ProducerSettings",
    "PrometheusSettings",
    "QualitySettings",
    "Settings",
    "SettingsBase",
    "ShopDbSettings",
    "SparkSettings",
    "StackSettings",
    "StreamsSettings",
    "get_settings",
    "is_placeholder",
    "real_secret_problem",
]

_S = TypeVar("_S", bound=SettingsBase)


class _SettingsCache:
    """``get_settings()``: the union for the command line; ``get_settings(ApiSettings)``: a
    process's own class. One object per class per process, read once;
    ``get_settings.cache_clear()`` makes every class re-read (tests)."""

    def __init__(self) -> None:
        self._built: dict[type[SettingsBase], SettingsBase] = {}
        self._lock = threading.Lock()

    @overload
    def __call__(self) -> Settings: ...

    @overload
    def __call__(self, cls: type[_S]) -> _S: ...

    def __call__(self, cls: type[SettingsBase] = Settings) -> SettingsBase:
        with self._lock:
            found = self._built.get(cls)
            if found is None:
                found = self._built[cls] = cls()
            return found

    def cache_clear(self) -> None:
        with self._lock:
            self._built.clear()


get_settings = _SettingsCache()
