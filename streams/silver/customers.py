"""Silver customers: one row per customer (current state), plus SCD2 history.

History lets a past order join the region the customer had when ordering. An erasure
(a delete) leaves a key-only tombstone here and blanks personal data in every history
version, so "delete" really deletes from silver.
"""

from __future__ import annotations

from streams.silver import cdc

TABLE = cdc.declare(
    "customers",
    keys=("customer_id",),
    pii=("email", "first_name", "last_name", "phone"),
    has_history=True,
)
