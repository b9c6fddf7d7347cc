"""The DuckDB side of the mirror: its names and SQL quoting, tables typed from describe, idempotent commits,
and sync state. Imports only the client (`salesforce/`) and the settings."""
