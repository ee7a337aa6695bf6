"""Suites of gold tables."""
