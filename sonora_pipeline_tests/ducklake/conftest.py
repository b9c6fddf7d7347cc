"""One throwaway PostgreSQL per test module (the lake's catalog server); each test makes its own database."""

from __future__ import annotations

import itertools

import pytest

from sonora_pipeline_tests.services import postgres_server

_databases = itertools.count(1)


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


@pytest.fixture
def catalog_db(pg) -> str:
    """A fresh PostgreSQL database for this test's lake."""
    return pg.create_database(f"lake{next(_databases)}")
