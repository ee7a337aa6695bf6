"""Bronze: the raw log in Delta, one append-only table per Kafka topic."""
