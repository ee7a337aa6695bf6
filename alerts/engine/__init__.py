"""The live alert engine: the Debezium inventory change log → alert state in the ops database.

Grain of what it writes (``alerts/schema.sql``): one ``stock`` row per product x warehouse,
one ``transitions`` row per change of verdict, one ``alerts`` row per alert, one
``products``/``warehouses`` row per id, one ``rejected_records`` row per record it could not
use, and the next offset per topic partition.

Exactly once: the consumer reads from the offsets stored in ``alerting.consumer_offsets``
(never Kafka's committed offsets) and each batch's rows, offsets and ``NOTIFY`` go in one
PostgreSQL transaction. A crash anywhere loses the whole batch or none of it, and the next
start reads from where the last commit left off. Redeliveries are also harmless on their own:
a key's changes at or below its stored LSN are ignored, transitions are inserted ``ON
CONFLICT (alert_id, cdc_lsn) DO NOTHING``, and attributes only move to a higher LSN.

One engine per ops database: a session advisory lock makes a second one wait (a hot
standby) instead of writing beside the first.

The modules follow a record's way through the engine:

- ``changes``: Kafka records → a parsed batch (pure: Debezium envelopes, rejects, offsets);
- ``sql``: every statement the engine sends to the ops database, as text;
- ``apply``: a parsed batch → the ops database, in the caller's transaction;
- ``consumer``: the Kafka consumer loop that polls, applies and commits, batch after batch;
- ``rebuild``: every projection recomputed by replaying the log from the earliest offsets.
"""
