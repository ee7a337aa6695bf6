"""Low-stock alerting: the live engine over the inventory change log, and delivery."""
