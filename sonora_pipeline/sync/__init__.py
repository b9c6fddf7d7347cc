"""Keeping the DuckDB mirror equal to the org: which windows to read, fetching them, committing them."""
