"""``alerts.engine.consumer``: the pure edges of the loop, on real confluent-kafka messages."""

from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message

from alerts.engine.changes import INVENTORY_TOPIC, KafkaRecord
from alerts.engine.consumer import Progress, at_offset, kafka_record, usable


def test_a_message_becomes_a_record_of_bytes() -> None:
    message = Message(topic=INVENTORY_TOPIC, partition=2, offset=41, key='{"id": 1}', value=b"{}")
    assert kafka_record(message) == KafkaRecord(INVENTORY_TOPIC, 2, 41, b'{"id": 1}', b"{}")
    tombstone = Message(topic=INVENTORY_TOPIC, partition=0, offset=7, key=b"k", value=None)
    assert kafka_record(tombstone) == KafkaRecord(INVENTORY_TOPIC, 0, 7, b"k", None)


def test_transient_errors_are_skipped_and_fatal_ones_raise() -> None:
    assert usable(Message(topic=INVENTORY_TOPIC, value=b"{}"))
    transient = KafkaError(KafkaError._TRANSPORT)
    assert not usable(Message(topic=INVENTORY_TOPIC, error=transient))
    fatal = KafkaError(KafkaError._FATAL, fatal=True)
    with pytest.raises(KafkaException):
        usable(Message(topic=INVENTORY_TOPIC, error=fatal))


def test_a_partition_without_a_stored_offset_starts_at_the_beginning() -> None:
    stored = at_offset((INVENTORY_TOPIC, 1), 12)
    assert (stored.topic, stored.partition, stored.offset) == (INVENTORY_TOPIC, 1, 12)
    assert at_offset((INVENTORY_TOPIC, 1), None).offset == OFFSET_BEGINNING


def test_the_lag_is_unknown_until_measured_then_summed_over_partitions() -> None:
    progress = Progress()
    assert progress.lag is None
    progress.lags = {(INVENTORY_TOPIC, 0): 3, (INVENTORY_TOPIC, 1): 0, (INVENTORY_TOPIC, 2): 4}
    assert progress.lag == 7
