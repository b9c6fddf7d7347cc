"""SalesforceClient against the local org over HTTPS: REST and Bulk pages match the org, and injected
5xx, dropped connections, expired tokens and failing Bulk jobs give the same rows as a clean read."""

from __future__ import annotations

import csv
import io
import logging
import threading

import pytest

from sonora_pipeline.salesforce.auth import TokenManager
from sonora_pipeline.salesforce.bulk import count_csv_records
from sonora_pipeline.salesforce.errors import ApiError, AuthError, BulkJobFailed, BulkJobTimeout, TransientError
from sonora_pipeline_tests.salesforce.conftest import connection_for, fast_client

CONTACTS = "SELECT Id, LastName, Email FROM Contact ORDER BY Id"


def rest_ids(client, soql=CONTACTS, **kwargs):
    return [r["Id"] for page in client.query_pages(soql, batch_size=200, **kwargs) for r in page]


def bulk_rows(pages):
    rows = []
    for page in pages:
        rows.extend(csv.DictReader(io.StringIO(page.csv.decode("utf-8"), newline="")))
    return rows


def org_ids(org, object_name, include_deleted=True):
    cur = org.store.cursor()
    try:
        deleted = "" if include_deleted else " WHERE NOT IsDeleted"
        return sorted(r[0] for r in cur.execute(f'SELECT "Id" FROM "{object_name}"{deleted}').fetchall())
    finally:
        cur.close()


# -- clean reads -------------------------------------------------------------------------------------

def test_rest_pages_of_200_equal_the_orgs_rows(shared_org):
    client = fast_client(shared_org)
    pages = list(client.query_pages(CONTACTS, batch_size=200))
    assert len(pages) >= 3 and all(len(p) <= 200 for p in pages)
    ids = [r["Id"] for p in pages for r in p]
    assert ids == org_ids(shared_org, "Contact")
    assert len(set(ids)) == len(ids)
    assert pages[0][0]["attributes"]["type"] == "Contact"
    assert client.api_calls == len(pages)
    assert client.count("SELECT COUNT() FROM Contact") == len(ids)


def test_query_without_deleted_rows_skips_the_recycle_bin(org):
    client = fast_client(org)
    live_before = client.count("SELECT COUNT() FROM Contact", include_deleted=False)
    all_before = client.count("SELECT COUNT() FROM Contact")
    victim = rest_ids(client, include_deleted=False)[0]
    org.delete("Contact", victim)
    assert victim not in rest_ids(client, include_deleted=False)
    assert victim in rest_ids(client, include_deleted=True)
    assert client.count("SELECT COUNT() FROM Contact", include_deleted=False) == live_before - 1
    assert client.count("SELECT COUNT() FROM Contact") == all_before == len(org_ids(org, "Contact"))


@pytest.mark.parametrize("object_name", ["Account", "Contact", "Task", "CaseComment"])
def test_bulk_pages_total_equals_count(shared_org, object_name):
    client = fast_client(shared_org)
    pages = list(client.bulk_query_pages(f"SELECT Id, CreatedDate FROM {object_name}", max_records=100))
    total = sum(p.number_of_records for p in pages)
    assert total == client.count(f"SELECT COUNT() FROM {object_name}")
    assert len(pages) == -(-total // 100)
    rows = bulk_rows(pages)
    assert sorted(r["Id"] for r in rows) == org_ids(shared_org, object_name)
    assert len({p.job_id for p in pages}) == 1


def test_bulk_rows_with_quoted_newlines_are_counted_as_rows(org):
    tricky = 'line one\nline "two"\r\nline, three'
    org.create("Account", {"Name": "Multi\nLine Ltd", "Description": tricky})
    client = fast_client(org)
    pages = list(client.bulk_query_pages("SELECT Id, Name, Description FROM Account", max_records=7))
    rows = bulk_rows(pages)
    assert len(rows) == sum(p.number_of_records for p in pages) == client.count("SELECT COUNT() FROM Account")
    assert any(r["Description"] == tricky for r in rows)
    # a line count would be wrong here: that is why pages are counted with a CSV parser
    assert sum(p.csv.count(b"\n") - 1 for p in pages) > len(rows)


def test_count_csv_records():
    assert count_csv_records(b"") == 0
    assert count_csv_records(b'"Id"\n') == 0
    assert count_csv_records(b'"Id","Body"\n"1","a\nb"\n"2",\n') == 2
    assert count_csv_records(b'"Description"\n\n"x"\n') == 2  # a single null column is a blank line


def test_describe_limits_and_composite_batch(org):
    client = fast_client(org)
    assert {f["name"] for f in client.describe("Account")["fields"]} >= {"Id", "Name"}
    assert any(o["name"] == "Contact" for o in client.describe_global()["sobjects"])
    assert client.limits()["DailyApiRequests"]["Max"] > 0
    batch = client.composite_batch([
        {"method": "GET", "url": "v62.0/sobjects/Account/describe"},
        {"method": "GET", "url": "v62.0/sobjects/NoSuchThing__c/describe"},
    ])
    assert batch["hasErrors"] is True
    assert [r["statusCode"] for r in batch["results"]] == [200, 404]
    assert client.api_calls == 4
    assert client.budget.used == org.quota.snapshot().used


def test_errors_carry_the_orgs_code_and_message(org):
    client = fast_client(org)
    with pytest.raises(ApiError) as caught:
        list(client.query_pages("SELECT Id, NoSuchField__c FROM Account"))
    assert caught.value.status == 400 and caught.value.error_code == "INVALID_FIELD"
    assert "NoSuchField__c" in caught.value.api_message
    with pytest.raises(ApiError) as caught:
        client.describe("NoSuchThing__c")
    assert caught.value.status == 404 and caught.value.error_code == "NOT_FOUND"
    assert client.retries == 0  # 4xx are not retried


# -- faults ------------------------------------------------------------------------------------------

def test_5xx_and_dropped_connections_mid_paging_give_the_same_rows(big_org):
    clean = rest_ids(fast_client(big_org))
    client = fast_client(big_org)
    pages = client.query_pages(CONTACTS, batch_size=200)
    got = [r["Id"] for r in next(pages)]
    big_org.set_faults(next_errors=2, next_drops=2, path_contains="/services/data")
    for page in pages:
        got.extend(r["Id"] for r in page)
    assert got == clean
    assert client.retries == 4
    assert client.api_calls == -(-len(clean) // 200) + 4  # a real org counts the retried calls too


def test_random_faults_with_a_seed_give_the_same_rows(big_org):
    clean = rest_ids(fast_client(big_org), "SELECT Id FROM Task ORDER BY Id")
    big_org.set_faults(error_rate=0.25, drop_rate=0.15, seed=42)
    client = fast_client(big_org, max_attempts=12)
    assert rest_ids(client, "SELECT Id FROM Task ORDER BY Id") == clean
    assert client.retries > 0


def test_bulk_pages_are_refetched_with_the_same_locator_after_faults(big_org):
    client = fast_client(big_org)
    clean = bulk_rows(client.bulk_query_pages("SELECT Id, Subject FROM Task", max_records=150))
    big_org.set_faults(next_errors=1, next_drops=1, path_contains="/results")
    pages = client.bulk_query_pages("SELECT Id, Subject FROM Task", max_records=150)
    first = next(pages)
    big_org.set_faults(next_errors=2, next_drops=1, path_contains="/results")
    again = bulk_rows([first, *pages])
    assert again == clean
    assert client.retries == 5


def test_persistent_5xx_ends_in_transient_error_after_max_attempts(org):
    client = fast_client(org, max_attempts=3)
    client.tokens.token()
    org.set_faults(error_rate=1.0, path_contains="/services/data/v")
    with pytest.raises(TransientError) as caught:
        client.count("SELECT COUNT() FROM Account")
    assert "after 3 attempts" in str(caught.value) and "503" in str(caught.value)
    assert org.instance_url in str(caught.value) and "check SALESFORCE_INSTANCE_URL" in str(caught.value)
    assert client.api_calls == 3


def test_expired_token_mid_paging_refreshes_once_and_continues(big_org):
    clean = rest_ids(fast_client(big_org))
    client = fast_client(big_org)
    issued_before = len(big_org.authority._tokens)
    pages = client.query_pages(CONTACTS, batch_size=200)
    got = [r["Id"] for r in next(pages)]
    assert client.tokens.fetches == 1
    big_org.expire_tokens()
    for page in pages:
        got.extend(r["Id"] for r in page)
    assert got == clean
    assert client.tokens.fetches == 2  # exactly one extra token request
    assert len(big_org.authority._tokens) == issued_before + 2  # and the org saw just those two


def test_many_threads_hitting_an_expired_token_refresh_once(org):
    client = fast_client(org)
    client.tokens.token()
    org.expire_tokens()
    barrier = threading.Barrier(16)
    results, errors = [], []

    def worker():
        try:
            barrier.wait(5)
            results.append(client.count("SELECT COUNT() FROM Account"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(results) == 16 and len(set(results)) == 1
    assert client.tokens.fetches == 2  # the first token and ONE refresh


def test_refresh_is_single_flight(org):
    connection = connection_for(org)
    tokens = TokenManager(connection, fast_client(org).session)
    stale = tokens.token()
    barrier = threading.Barrier(12)
    fresh: list[str] = []

    def worker():
        barrier.wait(5)
        fresh.append(tokens.refresh(stale))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(fresh)) == 1 and fresh[0] != stale
    assert tokens.fetches == 2
    assert tokens.refresh("some-older-token") == fresh[0] and tokens.fetches == 2


def test_a_failing_bulk_job_is_retried_transparently(org, caplog):
    client = fast_client(org)
    clean = bulk_rows(client.bulk_query_pages("SELECT Id FROM Contact"))
    org.set_faults(fail_next_bulk_jobs=1)
    with caplog.at_level(logging.WARNING):
        pages = list(client.bulk_query_pages("SELECT Id FROM Contact"))
    assert bulk_rows(pages) == clean
    assert "ended Failed" in caplog.text


def test_a_bulk_job_failing_every_time_raises_bulk_job_failed(org):
    client = fast_client(org)
    org.set_faults(fail_next_bulk_jobs=3)
    with pytest.raises(BulkJobFailed) as caught:
        list(client.bulk_query_pages("SELECT Id FROM Contact"))
    err = caught.value
    assert err.error_code == "Failed" and "Retried more than 15 times" in err.error_message
    assert "3 jobs tried" in str(err)
    assert org.faults.fail_next_bulk_jobs == 0  # exactly three jobs were created


def test_a_bulk_query_job_past_its_deadline_stops_with_its_id_and_is_aborted(org):
    """A slowed-down org reports a job InProgress at its first poll; a deadline shorter than that wait ends the
    run with the job's id, its state and what to do, and the job is aborted in the org."""
    rows = len(org_ids(org, "Contact"))
    org.set_faults(latency_seconds=0.3)
    patient = fast_client(org)
    assert sum(p.number_of_records for p in patient.bulk_query_pages("SELECT Id FROM Contact")) == rows
    client = fast_client(org, bulk_job_deadline_seconds=0.2)
    with pytest.raises(BulkJobTimeout) as caught:
        list(client.bulk_query_pages("SELECT Id FROM Contact"))
    err = caught.value
    assert err.job_id.startswith("750") and f"Bulk query job {err.job_id} was still InProgress" in str(err)
    assert "the limit is 0.2 s" in err.message and "it was aborted" in err.message
    assert "run again later" in err.fix and "Bulk Data Load Jobs" in err.fix
    assert org.bulk.query_jobs[err.job_id].state == "Aborted"


def test_api_disabled_user_is_an_auth_error_with_the_fix(org):
    org.configure_app(api_enabled=False)
    client = fast_client(org)
    with pytest.raises(AuthError) as caught:
        client.limits()
    assert caught.value.reason == "api_disabled"
    assert "API Enabled" in caught.value.fix and "permission set" in caught.value.fix


def test_no_secret_or_token_in_logs_errors_or_reprs(org, caplog):
    secret = org.credentials.consumer_secret
    with caplog.at_level(logging.DEBUG):
        client = fast_client(org)
        org.set_faults(next_errors=1, next_drops=1)
        client.count("SELECT COUNT() FROM Account")
        org.expire_tokens()
        list(client.query_pages("SELECT Id FROM Contact"))
        with pytest.raises(ApiError) as caught:
            client.describe("NoSuchThing__c")
    token = client.tokens.token()
    texts = [caplog.text, repr(client), str(client), repr(client.tokens), repr(client.connection),
             str(caught.value), repr(caught.value)]
    for text in texts:
        assert secret not in text and token not in text
