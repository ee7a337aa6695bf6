"""The daily batch as one run: dbt (batch/), quality (quality/), reconciliation (batch/),
retention of every deployable's data, and the notice that pages (alerts/)."""
