"""The shared-warehouse setting: DuckLake with its catalog in PostgreSQL and its data under a folder (or s3://).

Unset, the warehouse is the embedded DuckDB file. Single org: `SONORA_DUCKLAKE_CATALOG` (a libpq string,
`dbname=sonora host=127.0.0.1 port=5432 user=sonora`) and `SONORA_DUCKLAKE_DATA_PATH` (a folder, relative to the
current directory, or an object-storage URL). Many orgs: the registry's top-level `ducklake:` block (`catalog`,
`data_path` relative to the registry's folder). Checked here, before anything connects: the catalog string must
never carry a password (libpq reads PGPASSWORD or ~/.pgpass, which stay out of files, logs and messages).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_CATALOG = "SONORA_DUCKLAKE_CATALOG"
ENV_DATA_PATH = "SONORA_DUCKLAKE_DATA_PATH"
# libpq keywords a catalog string may hold (https://www.postgresql.org/docs/current/libpq-connect.html);
# password and passfile are refused: secrets come from PGPASSWORD or ~/.pgpass, read by libpq itself.
_KEYWORD = re.compile(r"([A-Za-z_]+)\s*=")
_SECRET_KEYWORDS = ("password", "passfile", "sslpassword")
_URL_SCHEMES = ("s3://", "gs://", "gcs://", "r2://", "az://", "abfss://", "https://", "http://")
PASSWORD_FIX = ("remove the password from it and give it to libpq instead: export PGPASSWORD in the environment "
                "of every process, or add a line to ~/.pgpass (host:port:dbname:user:password, mode 0600)")


class LakeSettingsError(ValueError):
    """The DuckLake setting cannot be used: names the setting and the fix, never its secret parts."""


@dataclass(frozen=True)
class LakeSettings:
    """Where the shared warehouse lives: the catalog (libpq string, no password) and the data path (an absolute
    folder, or an object-storage URL as given)."""

    catalog: str
    data_path: str

    @property
    def is_local(self) -> bool:
        return not self.data_path.startswith(_URL_SCHEMES)


def check_catalog(value: object, setting: str) -> str:
    """The libpq string, stripped; LakeSettingsError naming `setting` when it is empty, not key=value, or holds
    a password (whose value is never repeated)."""
    if not isinstance(value, str) or not value.strip():
        raise LakeSettingsError(f"{setting} must be a libpq connection string such as "
                                "'dbname=sonora host=127.0.0.1 port=5432 user=sonora'")
    text = value.strip()
    if text.startswith(("postgres://", "postgresql://")):
        raise LakeSettingsError(f"{setting} is a URL; write it as libpq keywords instead (e.g. 'dbname=sonora "
                                "host=db.internal port=5432 user=sonora'), with no password")
    keywords = {k.lower() for k in _KEYWORD.findall(text)}
    secret = sorted(keywords & set(_SECRET_KEYWORDS))
    if secret:
        raise LakeSettingsError(f"{setting} holds a {secret[0]}: secrets never live in settings. Fix: {PASSWORD_FIX}")
    if "dbname" not in keywords:
        raise LakeSettingsError(f"{setting} names no database; add dbname=... (e.g. 'dbname=sonora "
                                "host=127.0.0.1 port=5432 user=sonora')")
    return text


def check_data_path(value: object, setting: str, base: Path) -> str:
    """An object-storage URL as given, or a folder made absolute against `base`."""
    if not isinstance(value, str) or not value.strip():
        raise LakeSettingsError(f"{setting} must be the folder (or s3://bucket/prefix/) the lake's Parquet files "
                                "go to, e.g. lake/")
    text = value.strip()
    if text.startswith(_URL_SCHEMES):
        return text.rstrip("/") + "/"
    return os.path.abspath(base / Path(text).expanduser()) + "/"


def lake_from_env() -> LakeSettings | None:
    """The single-org lake from SONORA_DUCKLAKE_CATALOG / SONORA_DUCKLAKE_DATA_PATH; None when the catalog is unset."""
    catalog = os.environ.get(ENV_CATALOG, "")
    if not catalog.strip():
        if os.environ.get(ENV_DATA_PATH, "").strip():
            raise LakeSettingsError(f"{ENV_DATA_PATH} is set but {ENV_CATALOG} is not. Fix: set {ENV_CATALOG} to the "
                                    f"catalog's libpq string, or unset {ENV_DATA_PATH} to keep the DuckDB file")
        return None
    catalog = check_catalog(catalog, ENV_CATALOG)
    if not os.environ.get(ENV_DATA_PATH, "").strip():
        raise LakeSettingsError(f"{ENV_CATALOG} is set but {ENV_DATA_PATH} is not. Fix: set {ENV_DATA_PATH} to the "
                                "folder (or s3://bucket/prefix/) the lake's Parquet files go to, e.g. lake/")
    return LakeSettings(catalog, check_data_path(os.environ[ENV_DATA_PATH], ENV_DATA_PATH, Path.cwd()))
