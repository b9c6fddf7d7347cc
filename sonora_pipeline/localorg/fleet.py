"""`LocalOrgFleet`: many local orgs in one process, each on its own loopback port with its own org id,
credentials, records, quota and controls, so tests, benchmarks and the demo can run 1,000 orgs without
1,000 processes.

What the orgs share is what a real pod shares and no client can tell apart: one CA (one `ca_bundle` file
for every org), one TLS context and one accepting thread (a selector over every listening socket; each
connection is then served in its own thread, as a lone org's are). Everything a client or a test can
change stays per org: `fleet.org(name)` is that org's `LocalOrg`, with every control, and its admin API
answers on its own port.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sonora_pipeline.localorg.generator import SHAPES
from sonora_pipeline.localorg.http import SharedAcceptor
from sonora_pipeline.localorg.ids import make_id
from sonora_pipeline.localorg.org import DEFAULT_DAILY_API_REQUESTS, LocalOrg
from sonora_pipeline.localorg.runtime import write_credentials
from sonora_pipeline.localorg.schema import Catalog, build_standard_catalog
from sonora_pipeline.localorg.soql.results import CSV_NULL_FORMS
from sonora_pipeline.localorg.tls import LocalTls

# The registry's rule for an org name (it is a file name here, a partition key and a folder there).
ORG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class OrgSpec:
    """One org of a fleet: `LocalOrg`'s options, plus its name, port and quota window."""

    name: str
    records: int = 20
    seed: int = 7
    shape: str = "b2b"
    custom_fields: bool = True
    csv_nulls: str = "empty"
    daily_api_requests: int = DEFAULT_DAILY_API_REQUESTS
    quota_window_seconds: float | None = None  # default a real org's 24 hours
    hidden_fields: Mapping[str, list[str]] | None = None
    org_id: str | None = None  # default a fresh one per start, distinct within the fleet
    port: int = 0  # default any free port
    now: datetime | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "the fleet spec") -> OrgSpec:
        """A spec from a YAML/JSON mapping, refusing unknown keys by name (a typo must not pass silently)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: each org must be a mapping with at least `name`, not {data!r}. Fix: "
                             "write e.g. `- {name: acme, records: 50}`")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: org {data.get('name', '?')!r} has unknown key(s) {', '.join(unknown)}. "
                             f"Fix: use only {', '.join(sorted(known))}")
        if "name" not in data:
            raise ValueError(f"{where}: an org has no `name`. Fix: give each org a name like acme")
        return cls(**dict(data))


def check_specs(specs: list[OrgSpec]) -> None:
    """Names valid and distinct, counts sensible: said before anything starts."""
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec.name, str) or not ORG_NAME.match(spec.name):
            raise ValueError(f"org name {spec.name!r} is not valid. Fix: a lower-case letter, then up to 39 "
                             "lower-case letters, digits or _ (for example acme or org01)")
        if spec.name in seen:
            raise ValueError(f"org name {spec.name!r} appears twice. Fix: give every org its own name")
        seen.add(spec.name)
        if not isinstance(spec.records, int) or spec.records < 0:
            raise ValueError(f"org {spec.name!r}: records must be a whole number ≥ 0, not {spec.records!r}")
        if spec.shape not in SHAPES:
            raise ValueError(f"org {spec.name!r}: shape {spec.shape!r} is not one the local org knows. Fix: use "
                             f"one of {', '.join(SHAPES)}")
        if spec.csv_nulls not in CSV_NULL_FORMS:
            raise ValueError(f"org {spec.name!r}: csv_nulls {spec.csv_nulls!r} is not known. Fix: use one of "
                             f"{', '.join(CSV_NULL_FORMS)}")
        if not isinstance(spec.daily_api_requests, int) or spec.daily_api_requests < 0:
            raise ValueError(f"org {spec.name!r}: daily_api_requests must be a whole number ≥ 0, not "
                             f"{spec.daily_api_requests!r}")
    if not specs:
        raise ValueError("a fleet needs at least one org. Fix: give one spec or more")


class LocalOrgFleet:
    """N local orgs served by one process. `with LocalOrgFleet(specs) as fleet:` or `.start()`/`.stop()`."""

    def __init__(self, specs: Iterable[OrgSpec], *, state_dir: Path | None = None, host: str = "127.0.0.1"):
        self.specs = list(specs)
        check_specs(self.specs)
        self.host = host
        self.state_dir = state_dir  # the CA file lives here; default a temp folder removed at stop()
        self._own_dir = False
        self._orgs: dict[str, LocalOrg] = {}
        self._tls: LocalTls | None = None
        self._acceptor: SharedAcceptor | None = None
        self._written: list[Path] = []  # credentials files, removed at stop(): no org answers them after
        self._catalog: Catalog | None = None  # the standard schema, forked for each org that generates its own

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> LocalOrgFleet:
        if self._acceptor is not None:
            return self
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="sonora-localorgs-"))
            self._own_dir = True
        try:
            self._tls = LocalTls(Path(self.state_dir))
            self._acceptor = SharedAcceptor()
            org_ids = self._org_ids()
            templates = self._templates()
            for spec in self.specs:
                org = self._build(spec, org_ids[spec.name], templates.get(_records_key(spec)))
                self._orgs[spec.name] = org
                org.start(self.host, spec.port, tls=self._tls, acceptor=self._acceptor)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every port and connection and the accepting thread; the credentials files it wrote and a temp
        folder of its own go too."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written = []
        for org in self._orgs.values():
            org.stop()
        if self._acceptor is not None:
            self._acceptor.stop()
            self._acceptor = None
        if self._own_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir, self._own_dir = None, False

    def __enter__(self) -> LocalOrgFleet:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _org_ids(self) -> dict[str, str]:
        """Given ids as given (refused if two orgs share one), fresh ones for the rest, all distinct."""
        given = [s.org_id for s in self.specs if s.org_id]
        if len(given) != len(set(given)):
            raise ValueError("two orgs of the fleet were given the same org_id. Fix: give each its own")
        taken = set(given)
        ids = {}
        for spec in self.specs:
            org_id = spec.org_id
            while org_id is None or org_id in taken and not spec.org_id:
                org_id = make_id("00D", 1 + secrets.randbelow(62 ** 9 - 1), pod="5g0")  # as LocalOrg makes one
            taken.add(org_id)
            ids[spec.name] = org_id
        return ids

    def _templates(self) -> dict[tuple, LocalOrg]:
        """For each set of orgs with the same records (same records, seed, shape, schema and now): one org,
        generated once and never served or written, whose records they all start from (copied into an org's
        own database at its first write, see `store_fork.py`). An org whose records no other shares needs none."""
        counts: dict[tuple, int] = {}
        for spec in self.specs:
            counts[_records_key(spec)] = counts.get(_records_key(spec), 0) + 1
        return {key: LocalOrg(records=key[0], seed=key[1], shape=key[2], custom_fields=key[3], now=key[4],
                              catalog=self._standard_catalog().fork())
                for key, count in counts.items() if count > 1}

    def _standard_catalog(self) -> Catalog:
        """Built once (~200 ms) and forked for each org or template that generates records (microseconds)."""
        if self._catalog is None:
            self._catalog = build_standard_catalog()
        return self._catalog

    def _build(self, spec: OrgSpec, org_id: str, template: LocalOrg | None) -> LocalOrg:
        org = LocalOrg(records=spec.records, seed=spec.seed, shape=spec.shape, custom_fields=spec.custom_fields,
                       csv_nulls=spec.csv_nulls, daily_api_requests=spec.daily_api_requests,
                       hidden_fields=dict(spec.hidden_fields) if spec.hidden_fields else None, org_id=org_id,
                       now=spec.now, records_of=template,
                       catalog=self._standard_catalog().fork() if template is None else None)
        if spec.quota_window_seconds is not None:
            org.set_quota(window_seconds=spec.quota_window_seconds)
        return org

    # -- the orgs ---------------------------------------------------------------------------------------
    def org(self, name: str) -> LocalOrg:
        try:
            return self._orgs[name]
        except KeyError:
            raise KeyError(f"the fleet has no org named {name!r} (it has {len(self._orgs)}: "
                           f"{', '.join(list(self._orgs)[:5])}{', ...' if len(self._orgs) > 5 else ''})") from None

    @property
    def names(self) -> list[str]:
        return list(self._orgs)

    def __iter__(self) -> Iterator[LocalOrg]:
        return iter(self._orgs.values())

    def __len__(self) -> int:
        return len(self._orgs)

    @property
    def ca_bundle(self) -> str:
        if self._tls is None:
            raise RuntimeError("the fleet is not serving yet: call start()")
        return str(self._tls.ca_bundle)

    def credentials(self, name: str) -> dict[str, str]:
        """An org's credentials file content: `LocalOrg.credentials` plus its org id and name."""
        org = self.org(name)
        return {**org.credentials.as_dict(), "org_id": org.org_id, "name": name}

    def write_credentials(self, directory: Path, *, pid: int | None = None) -> Path:
        """One `<name>.json` per org (mode 600; usable as is as a registry's `credentials: {file: ...}`), then
        `index.json` naming them all, written last, so a reader that sees the index sees every file. stop()
        removes them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {"ca_bundle": self.ca_bundle, "pid": pid if pid is not None else os.getpid(),
                                 "orgs": {}}
        for name in self._orgs:
            credentials = self.credentials(name)
            write_credentials(directory / f"{name}.json", credentials)
            self._written.append(directory / f"{name}.json")
            index["orgs"][name] = {"instance_url": credentials["instance_url"], "org_id": credentials["org_id"],
                                   "credentials_file": f"{name}.json"}
        path = directory / INDEX_FILE
        write_credentials(path, index)
        self._written.append(path)
        return path


def _records_key(spec: OrgSpec) -> tuple:
    return (spec.records, spec.seed, spec.shape, spec.custom_fields, spec.now)


def read_index(directory: Path) -> dict[str, Any] | None:
    """A fleet's index.json in `directory`, or None when there is none (or it is being written)."""
    try:
        return json.loads((Path(directory) / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return None


def tiny_specs(count: int, *, records: int = 20, seed: int = 7, prefix: str = "org", **options: Any) -> list[OrgSpec]:
    """`count` orgs named org001.. (zero-padded to the count's width), all of the same shape."""
    width = max(2, len(str(count)))
    return [OrgSpec(name=f"{prefix}{i:0{width}d}", records=records, seed=seed, **options)
            for i in range(1, count + 1)]
