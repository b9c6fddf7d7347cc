"""Describe responses built from the catalog: the shape of the real recordings, with the requested API
version in every URL and only the fields the run-as user can read."""

from __future__ import annotations

import copy
import re
from typing import Any

from sonora_pipeline.localorg.schema import MASTER_RECORD_TYPE_ID, Catalog, ObjectSpec

_VERSION_IN_URL = re.compile(r"/v(\d+|xx)\.\d+/")  # CumulusCI anonymised some as vxx.0
_UI_HOST = re.compile(r"https://[^/]+")


def _versioned(value: Any, version: str, instance_url: str) -> Any:
    if isinstance(value, str):
        value = _VERSION_IN_URL.sub(f"/v{version}/", value)
        if value.startswith("https://"):
            value = _UI_HOST.sub(instance_url, value, count=1)
        return value
    if isinstance(value, dict):
        return {k: _versioned(v, version, instance_url) for k, v in value.items()}
    if isinstance(value, list):
        return [_versioned(v, version, instance_url) for v in value]
    return value


def _object_urls(obj: ObjectSpec, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "compactLayouts": f"{base}/describe/compactLayouts",
        "rowTemplate": f"{base}/{{ID}}",
        "approvalLayouts": f"{base}/describe/approvalLayouts",
        "listviews": f"{base}/listviews",
        "describe": f"{base}/describe",
        "quickActions": f"{base}/quickActions",
        "layouts": f"{base}/describe/layouts",
        "sobject": base,
    }


def record_type_infos(obj: ObjectSpec, version: str) -> list[dict[str, Any]]:
    """Every object reports the Master record type; objects with record types list them first."""
    infos = []
    for i, rt in enumerate(obj.record_types):
        infos.append({
            "active": True, "available": True, "defaultRecordTypeMapping": i == 0,
            "developerName": rt["developerName"], "master": False, "name": rt["name"],
            "recordTypeId": rt["recordTypeId"],
            "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/{rt['recordTypeId']}"},
        })
    infos.append({
        "active": True, "available": True, "defaultRecordTypeMapping": not obj.record_types,
        "developerName": "Master", "master": True, "name": "Master", "recordTypeId": MASTER_RECORD_TYPE_ID,
        "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/{MASTER_RECORD_TYPE_ID}"},
    })
    return infos


def describe_sobject(catalog: Catalog, obj: ObjectSpec, version: str, instance_url: str) -> dict[str, Any]:
    with catalog.lock:
        fields = [copy.deepcopy(f.raw) for f in catalog.readable_fields(obj)]
    top = _versioned(copy.deepcopy(obj.describe_top), version, instance_url)
    recorded = {k: v for k, v in top.get("urls", {}).items() if f"/sobjects/{obj.name}/" in v or k.startswith("ui")}
    top["urls"] = {
        **recorded, **_object_urls(obj, version),
        "uiDetailTemplate": f"{instance_url}/{{ID}}", "uiEditTemplate": f"{instance_url}/{{ID}}/e",
        "uiNewRecord": f"{instance_url}/{obj.key_prefix}/e",
    }
    top["fields"] = fields
    top["recordTypeInfos"] = record_type_infos(obj, version)
    return dict(sorted(top.items()))


def global_entry(obj: ObjectSpec, version: str) -> dict[str, Any]:
    entry = copy.deepcopy(obj.global_entry)
    entry["urls"] = _object_urls(obj, version)
    return entry


def describe_global(catalog: Catalog, version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [global_entry(o, version) for o in sorted(catalog.objects(), key=lambda o: o.name)],
    }


def basic_info(catalog: Catalog, obj: ObjectSpec, version: str, recent: list[dict[str, Any]]) -> dict[str, Any]:
    return {"objectDescribe": global_entry(obj, version), "recentItems": recent}
