"""SalesforceClient: the one object the sync, the sensor and the write-back call an org through.

Why one object over three modules: callers want "the org" (REST, Bulk, the org's clock), while the rules
every call obeys (token, budget, retries, error mapping) live once in `transport.py`, the REST shapes in
`rest.py` and the Bulk jobs in `bulk.py`. The keyword-only constructor arguments (backoff floor, timeouts,
Bulk polling and deadline) exist so that a sensor tick can fail fast and tests can run the same code paths
with tiny delays. Pass an `OrgSession` instead of a connection to share one token and connection pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.bulk import BULK_JOB_DEADLINE_SECONDS, BulkApi
from sonora_pipeline.salesforce.connection import OrgConnection, safe_url
from sonora_pipeline.salesforce.rest import RestApi
from sonora_pipeline.salesforce.transport import DEFAULT_TIMEOUT, OrgSession


class SalesforceClient(RestApi, BulkApi):
    """Calls one org's REST and Bulk 2.0 APIs under the transport's rules. Thread-safe: one client may be
    shared by the threads of a run. `api_calls` counts this client's calls (token requests excluded)."""

    def __init__(self, connection: OrgConnection | OrgSession, budget: ApiBudget | None = None, *,
                 log: Any = None, max_attempts: int = 6, max_backoff_seconds: float = 30.0,
                 min_backoff_seconds: float = 0.5, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 bulk_poll_seconds: tuple[float, float] = (0.05, 2.0), bulk_job_retries: int = 2,
                 bulk_job_deadline_seconds: float = BULK_JOB_DEADLINE_SECONDS,
                 sleep: Callable[[float], None] = time.sleep, wait_for_quota: bool = True):
        super().__init__(connection, budget, log=log, max_attempts=max_attempts,
                         max_backoff_seconds=max_backoff_seconds, min_backoff_seconds=min_backoff_seconds,
                         timeout=timeout, sleep=sleep, wait_for_quota=wait_for_quota)
        self.bulk_poll_seconds = bulk_poll_seconds
        self.bulk_job_retries = bulk_job_retries
        self.bulk_job_deadline_seconds = bulk_job_deadline_seconds

    def __repr__(self) -> str:
        return f"SalesforceClient({safe_url(self.connection.instance_url)}, api_calls={self.api_calls})"

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
