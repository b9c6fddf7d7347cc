"""Talking to a Salesforce org: connection and client code, importable without Dagster running."""
