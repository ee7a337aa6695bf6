"""How the streaming driver shares two cores: per-layer trigger intervals and FAIR pools."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pyspark.sql import SparkSession

from shopstream.lake.spark import SCHEDULER_POOLS
from shopstream.settings import Settings


def test_each_layer_has_its_trigger_and_zero_falls_back_to_silvers() -> None:
    settings = Settings(streams_trigger_s=3, streams_bronze_trigger_s=30)
    assert settings.trigger_s("silver") == 3
    assert settings.trigger_s("bronze") == 30
    assert Settings(streams_trigger_s=3, streams_bronze_trigger_s=0).trigger_s("bronze") == 3


def test_the_driver_loads_its_pools_with_silver_first(spark: SparkSession) -> None:
    pools = {p.get("name"): p for p in ET.parse(SCHEDULER_POOLS).getroot().iter("pool")}
    assert set(pools) == {"bronze", "silver"}
    weight = {name: int(p.findtext("weight", "1")) for name, p in pools.items()}
    assert weight["silver"] > weight["bronze"]
    assert spark.sparkContext.getConf().get("spark.scheduler.mode") == "FAIR"
    scheduler = spark.sparkContext._jsc.sc()
    for name, expected in weight.items():
        assert scheduler.getPoolForName(name).get().weight() == expected, name
