"""Structured Streaming jobs: Kafka → bronze → silver → gold Delta tables."""
