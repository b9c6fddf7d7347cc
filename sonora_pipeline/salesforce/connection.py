"""Connecting to an org through an External Client App with the OAuth 2.0 client credentials flow.

The token exchange goes to the instance URL's own `/services/oauth2/token` (the flow is only served on
an org's My Domain), and the session is handed to simple-salesforce. The consumer secret lives only in
this object's private attribute and in the request body: it is never logged or put in an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce

DEFAULT_API_VERSION = "62.0"


class ConnectionFailed(Exception):
    """The org refused the connection; `reason` says what is wrong and how to fix it."""


@dataclass
class OrgConnection:
    instance_url: str
    consumer_key: str
    consumer_secret: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None
    timeout: float = 60.0

    def http_session(self) -> requests.Session:
        session = requests.Session()
        if self.ca_bundle:
            session.verify = self.ca_bundle
            session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override `verify`
        return session

    def token(self, session: requests.Session) -> dict:
        url = self.instance_url.rstrip("/") + "/services/oauth2/token"
        reply = session.post(url, data={"grant_type": "client_credentials"},
                             auth=(self.consumer_key, self.consumer_secret), timeout=self.timeout)
        if reply.status_code != 200:
            try:
                body = reply.json()
                detail = f"{body.get('error')}: {body.get('error_description')}"
            except ValueError:
                detail = f"HTTP {reply.status_code}"
            raise ConnectionFailed(f"the org at {self.instance_url} refused the client credentials ({detail})")
        return reply.json()

    def client(self) -> Salesforce:
        session = self.http_session()
        token = self.token(session)
        return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                          session=session, version=self.api_version)

    @property
    def host(self) -> str:
        return urlsplit(self.instance_url).netloc
