"""The daily batch: dbt marts, Great Expectations checkpoints, stream-versus-batch-versus-source
reconciliation, a run record, and a summary to the alert channels (``shopstream batch``)."""
