"""The live workload behind `shopstream generate`: a simulated shop writing to PostgreSQL.

Layout, pure first:

- ``curve``: the daily order-rate curve.
- ``sampling``: Zipf popularity, weighted draws and event arrival processes.
- ``lifecycle``: order statuses and the moves between them.
- ``catalogue``: the deterministic reference data (warehouses, products, stock policy,
  initial customers).
- ``ops``: the changes the simulation makes, one dataclass per kind.
- ``model``: the shop simulation itself: state in, ordered ops out, no I/O.
- ``shop_writes``: the thin PostgreSQL side (seed, load state, apply a batch of ops).
- ``generator``: the loop that paces the model, commits batches and feeds the clickstream.
"""
