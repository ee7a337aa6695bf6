"""Data quality of the lake: Great Expectations suites for silver, gold and the dbt marts.

One suite per checked table (``quality/suites/<layer>/<table>.py``), run through GE's Spark
DataFrame data source by the batch's ``quality`` step (``quality/batch_step.py``). Each run saves
its validation results in a file context (``<state_dir>/quality/gx``), renders Data Docs
(``<state_dir>/quality/data_docs``) and stores one quality score per table and day in
``audit.quality_scores``.
"""

from __future__ import annotations

import os

# GE reads this when its modules load; the batch runs without network access, so no usage
# statistics either way (the context's own config says the same, see quality/context.py).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
