"""Suites of silver tables."""
