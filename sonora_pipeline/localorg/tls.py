"""A locally generated CA and server certificate (trustme), because simple-salesforce and every real
client always speak https: the org must be reachable over real TLS on loopback."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


class LocalTls:
    def __init__(self, directory: Path, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")):
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="Sonora local org CA")
        self.cert = self.ca.issue_cert(*hostnames)
        self.ca_bundle = directory / "localorg-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_bundle))
        self._context: ssl.SSLContext | None = None

    def server_context(self) -> ssl.SSLContext:
        """One context for every server this CA serves (a fleet's 1,000 orgs share it, and one CA file)."""
        if self._context is None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.cert.configure_cert(self._context)
        return self._context
