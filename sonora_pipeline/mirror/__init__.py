"""The DuckDB side of the mirror: tables typed from describe, idempotent commits, and sync state."""
