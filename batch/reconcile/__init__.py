"""Reconciliation: the gold views computed independently, straight from the source."""
