"""Keeping the DuckDB mirror equal to the org: catalog, windows, fetching, committing."""
