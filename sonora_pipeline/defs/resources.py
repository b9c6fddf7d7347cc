"""The only place that reads credentials: the Salesforce connection and the DuckDB warehouse."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from sonora_pipeline.paths import duckdb_path
from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, OrgConnection


class SalesforceResource(dg.ConfigurableResource):
    """An org reached through an External Client App (OAuth 2.0 client credentials)."""

    instance_url: str = Field(description="The org's My Domain URL, e.g. https://acme.my.salesforce.com")
    consumer_key: str = Field(description="The External Client App's consumer key")
    consumer_secret: str = Field(description="The External Client App's consumer secret (never logged)")
    api_version: str = Field(default=DEFAULT_API_VERSION, description="REST API version, e.g. 62.0")
    ca_bundle: str = Field(default="", description="CA bundle to trust (the local org's); empty for the system store")

    def connection(self) -> OrgConnection:
        return OrgConnection(instance_url=self.instance_url, consumer_key=self.consumer_key,
                             consumer_secret=self.consumer_secret, api_version=self.api_version,
                             ca_bundle=self.ca_bundle or None)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={
        "salesforce": SalesforceResource(
            instance_url=dg.EnvVar("SALESFORCE_INSTANCE_URL"),
            consumer_key=dg.EnvVar("SALESFORCE_CONSUMER_KEY"),
            consumer_secret=dg.EnvVar("SALESFORCE_CONSUMER_SECRET"),
            ca_bundle=dg.EnvVar("SALESFORCE_CA_BUNDLE"),
        ),
        "duckdb": DuckDBResource(database=str(duckdb_path())),
    })
