"""Change data capture: Debezium connectors in Kafka Connect, and their replication slots."""
