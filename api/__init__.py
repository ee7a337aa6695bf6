"""The low-stock alert API: FastAPI over the ops database and the gold lake (issue 5)."""
