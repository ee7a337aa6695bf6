"""Suites of the dbt marts (read through the batch session's catalog)."""
