"""The connection test inside Dagster: a job a data engineer launches from the UI after setting or
rotating credentials; it fails with the same per-cause message and fix as `sonora-pipeline test-connection`."""

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, connection_for, registered, step_org
from sonora_pipeline.defs.resources import SalesforceResource
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.salesforce.diagnose import check_connection
from sonora_pipeline.salesforce.errors import SalesforceError


@dg.op(description="Test the Salesforce connection: URL, credentials, OAuth policy, API access, object access.")
def test_salesforce_connection(context: dg.OpExecutionContext, salesforce: SalesforceResource) -> None:
    org = step_org(context)
    try:
        connection = connection_for(registered(org)) if org else salesforce.connection()
    except SalesforceError as err:
        raise dg.Failure(description=str(err)) from None
    report = check_connection(connection, objects=SETTINGS.sync.objects)
    for line in report.lines():
        context.log.info(line)
    if not report.ok:
        raise dg.Failure(description=report.render(),
                         metadata={"failed_check": report.failure.name if report.failure else ""})


@dg.job(description="Check that the pipeline can reach and read the connected org (no data is written).",
        partitions_def=ORG_PARTITIONS if MULTI_ORG else None)
def salesforce_test_connection_job() -> None:
    test_salesforce_connection()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[salesforce_test_connection_job])
