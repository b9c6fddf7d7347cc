"""Talking to a Salesforce org: connection and client code, describe parsing, SOQL literals and datetimes;
importable without Dagster, and importing nothing else of the project."""
