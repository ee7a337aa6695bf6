"""How the streaming driver shares two cores: per-layer trigger intervals and FAIR pools."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pyspark.sql import SparkSession

from shopstream.settings import Settings
from streams.session import SCHEDULER_POOLS
from streams.steps import step


def test_each_layer_has_its_trigger_and_zero_falls_back_to_silvers() -> None:
    settings = Settings(streams_trigger_s=3, streams_gold_trigger_s=15, streams_bronze_trigger_s=0)
    assert settings.trigger_s("silver") == 3
    assert settings.trigger_s("gold") == 15
    assert settings.trigger_s("bronze") == 3  # 0: the silver interval


def test_a_step_runs_its_jobs_in_its_layers_pool(spark: SparkSession) -> None:
    pools = {p.get("name"): p for p in ET.parse(SCHEDULER_POOLS).getroot().iter("pool")}
    assert set(pools) == {"bronze", "silver", "gold"}
    weight = {name: int(p.findtext("weight", "1")) for name, p in pools.items()}
    assert weight["silver"] > weight["gold"] and weight["silver"] > weight["bronze"]
    assert spark.sparkContext.getConf().get("spark.scheduler.mode") == "FAIR"

    context = spark.sparkContext
    with step(spark, "gold.sales_daily: refresh"):
        assert context.getLocalProperty("spark.scheduler.pool") == "gold"
        context.parallelize([1]).count()
    assert context.getLocalProperty("spark.scheduler.pool") is None
    # The driver loaded the file: its pools exist with their weights.
    scheduler = context._jsc.sc()
    for name, expected in weight.items():
        assert scheduler.getPoolForName(name).get().weight() == expected, name
