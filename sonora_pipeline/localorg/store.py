"""The org's records, held in an in-memory DuckDB database: one table per sObject, one column per field.

Every write goes through `OrgStore`, which keeps the system fields the way a real org does: `Id` from the
object's key prefix, `CreatedDate`/`LastModifiedDate`/`SystemModstamp` from the org clock, `IsDeleted`
plus a recycle-bin log for soft deletes, nothing at all for hard deletes, and derived read-only fields
(Opportunity.IsClosed/IsWon, Case.IsClosed/ClosedDate, Contact.Name, formula fields) recomputed on write.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import duckdb
import pyarrow as pa

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.ids import IdAllocator, is_valid_id, to_18
from sonora_pipeline.localorg.schema import Catalog, FieldSpec, ObjectSpec

DELETED_LOG = '"__DeletedRecord"'
CLOSED_WON = "Closed Won"
CLOSED_STAGES = {"Closed Won", "Closed Lost"}
CLOSED_CASE_STATUSES = {"Closed"}
CLOSED_TASK_STATUSES = {"Completed"}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_object_table(conn: duckdb.DuckDBPyConnection, obj: ObjectSpec) -> None:
    """Create the table holding `obj`'s rows: stored (non-compound) fields, typed from describe."""
    cols = ", ".join(f"{quote_ident(f.name)} {f.duckdb_type}" for f in obj.stored_fields())
    conn.execute(f'CREATE TABLE IF NOT EXISTS {obj.table} ({cols}, PRIMARY KEY ("Id"))')


class RecordError(Exception):
    """A per-record DML failure, reported the way a SaveResult reports it."""

    def __init__(self, status_code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.fields = fields or []

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class OrgStore:
    """All records of one org. Reads may come from any thread; writes are serialised by `write_lock`."""

    def __init__(self, catalog: Catalog, clock: OrgClock):
        self.catalog = catalog
        self.clock = clock
        self.ids = IdAllocator()
        self.conn = duckdb.connect(":memory:", config={"threads": 2})
        self.write_lock = threading.RLock()
        self.admin_user_id: str | None = None
        # Validation rules: (object, field) -> callable(value) -> error message or None.
        self.validation_rules: dict[tuple[str, str], Any] = {}
        for obj in catalog.objects():
            create_object_table(self.conn, obj)
        self.conn.execute(
            f"CREATE TABLE {DELETED_LOG} (ObjectName VARCHAR, Id VARCHAR, DeletedDate TIMESTAMP)"
        )

    # -- connections ----------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one request thread (DuckDB connections are not shared across threads)."""
        return self.conn.cursor()

    # -- bulk load (the generator) -------------------------------------------------------------------
    def load_arrow(self, object_name: str, table: pa.Table) -> None:
        """Append rows produced by the data generator; columns are matched by name, missing ones null."""
        obj = self._object(object_name)
        with self.write_lock:
            cur = self.conn.cursor()
            cur.register("incoming", table)
            cols = ", ".join(quote_ident(c) for c in table.column_names)
            values = ", ".join(self._decimal_from_float(obj, c, table.schema.field(c).type)
                               for c in table.column_names)
            cur.execute(f"INSERT INTO {obj.table} ({cols}) SELECT {values} FROM incoming")
            cur.unregister("incoming")
            cur.close()

    @staticmethod
    def _decimal_from_float(obj: ObjectSpec, column: str, arrow_type: pa.DataType) -> str:
        """A float going into a DECIMAL column passes through its shortest text: DuckDB's direct cast
        scales the binary value (-33.902947 would become -33.902946999999996 at scale 15)."""
        f = obj.field_named(column)
        if f is not None and f.decimal_digits and pa.types.is_floating(arrow_type):
            return f"CAST(CAST({quote_ident(column)} AS VARCHAR) AS {f.duckdb_type})"
        return quote_ident(column)

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, object_name: str, record_id: str, *, include_deleted: bool = False) -> dict[str, Any] | None:
        obj = self._object(object_name)
        rid = self._normalise_id(record_id)
        if rid is None:
            return None
        cur = self.cursor()
        try:
            rel = cur.execute(f'SELECT * FROM {obj.table} WHERE "Id" = ?', [rid])
            names = [d[0] for d in rel.description]
            row = rel.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        rec = dict(zip(names, row))
        if rec.get("IsDeleted") and not include_deleted:
            return None
        return rec

    def count(self, object_name: str, *, include_deleted: bool = True) -> int:
        obj = self._object(object_name)
        where = "" if include_deleted or "IsDeleted" not in obj.fields else ' WHERE NOT "IsDeleted"'
        cur = self.cursor()
        try:
            return cur.execute(f"SELECT count(*) FROM {obj.table}{where}").fetchone()[0]
        finally:
            cur.close()

    def updated_ids(self, object_name: str, start: datetime, end: datetime) -> list[str]:
        obj = self._object(object_name)
        cur = self.cursor()
        try:
            rows = cur.execute(
                f'SELECT "Id" FROM {obj.table} WHERE "SystemModstamp" >= ? AND "SystemModstamp" < ? '
                + ('AND NOT "IsDeleted" ' if "IsDeleted" in obj.fields else "")
                + 'ORDER BY "Id"',
                [_naive_utc(start), _naive_utc(end)],
            ).fetchall()
        finally:
            cur.close()
        return [r[0] for r in rows]

    def deleted_records(self, object_name: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        obj = self._object(object_name)
        cur = self.cursor()
        try:
            return cur.execute(
                f"SELECT Id, DeletedDate FROM {DELETED_LOG} WHERE ObjectName = ? AND DeletedDate >= ? "
                "AND DeletedDate < ? ORDER BY DeletedDate, Id",
                [obj.name, _naive_utc(start), _naive_utc(end)],
            ).fetchall()
        finally:
            cur.close()

    # -- DML -----------------------------------------------------------------------------------------
    def create(self, object_name: str, values: dict[str, Any], *, user_id: str | None = None) -> str:
        """Insert one record with DML semantics; raises RecordError like a failed SaveResult."""
        obj = self._object(object_name)
        if not obj.describe_top.get("createable", True):
            raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support insert")
        row = self._coerce_values(obj, values, for_create=True)
        now = _naive_utc(self.clock.now())
        user = user_id or self.admin_user_id
        with self.write_lock:
            rid = self.ids.new_id(obj.key_prefix)
            row["Id"] = rid
            for name, value in (("CreatedDate", now), ("LastModifiedDate", now), ("SystemModstamp", now),
                                ("CreatedById", user), ("LastModifiedById", user), ("OwnerId", None)):
                if name in obj.fields and (name != "OwnerId" or row.get("OwnerId") is None):
                    row[name] = value if name != "OwnerId" else user
            if "IsDeleted" in obj.fields:
                row["IsDeleted"] = False
            for f in obj.stored_fields():
                if f.type == "boolean" and row.get(f.name) is None:
                    row[f.name] = False
            self._derive(obj, row, previous=None, now=now)
            self._check_required(obj, row)
            self._validate(obj, row)
            cols = list(row)
            placeholders = ", ".join("?" for _ in cols)
            self.conn.execute(
                f"INSERT INTO {obj.table} ({', '.join(quote_ident(c) for c in cols)}) VALUES ({placeholders})",
                [row[c] for c in cols],
            )
        return rid

    def update(self, object_name: str, record_id: str, values: dict[str, Any], *,
               user_id: str | None = None, system_only: bool = False) -> None:
        """Update one record. `system_only` models automation that moves only SystemModstamp."""
        obj = self._object(object_name)
        with self.write_lock:
            current = self._require_live(obj, record_id)
            changes = self._coerce_values(obj, values, for_create=False) if values else {}
            now = _naive_utc(self.clock.now())
            merged = {**current, **changes}
            if not system_only:
                merged["LastModifiedDate"] = now
                if "LastModifiedById" in obj.fields:
                    merged["LastModifiedById"] = user_id or self.admin_user_id
            if "SystemModstamp" in obj.fields:
                merged["SystemModstamp"] = now
            self._derive(obj, merged, previous=current, now=now)
            self._validate(obj, merged)
            diff = {k: v for k, v in merged.items() if k in obj.fields and current.get(k) != v or k in changes}
            diff.pop("Id", None)
            if not diff:
                return
            sets = ", ".join(f"{quote_ident(k)} = ?" for k in diff)
            self.conn.execute(f'UPDATE {obj.table} SET {sets} WHERE "Id" = ?', [*diff.values(), current["Id"]])

    def update_many(self, object_name: str, items: list[tuple[str, dict[str, Any]]], *,
                    user_id: str | None = None) -> list[str | RecordError]:
        """Update many records at once (Bulk ingest): the same per-record rules and errors as `update`,
        one read and one write for the whole batch, so the org keeps up with a sync benchmark."""
        obj = self._object(object_name)
        results: list[str | RecordError] = []
        with self.write_lock:
            ids = [self._normalise_id(rid) if isinstance(rid, str) else None for rid, _ in items]
            wanted = sorted({i for i in ids if i})
            cur = self.cursor()
            try:
                rel = cur.execute(f'SELECT * FROM {obj.table} WHERE "Id" IN (SELECT unnest(?))', [wanted])
                names = [d[0] for d in rel.description]
                current = {r[0]: dict(zip(names, r)) for r in rel.fetchall()}
            finally:
                cur.close()
            now = _naive_utc(self.clock.now())
            label = obj.describe_top.get("label", obj.name)
            changed: dict[str, dict[str, Any]] = {}
            for (raw_id, values), rid in zip(items, ids):
                try:
                    if not isinstance(raw_id, str) or not raw_id.strip():
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
                    if rid is None or not rid.startswith(obj.key_prefix):
                        raise RecordError("MALFORMED_ID", f"{label} ID: id value of incorrect type: {raw_id}", ["Id"])
                    before = changed.get(rid) or current.get(rid)
                    if before is None or before.get("IsDeleted"):
                        raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
                    changes = self._coerce_values(obj, values, for_create=False) if values else {}
                    merged = {**before, **changes, "LastModifiedDate": now}
                    if "SystemModstamp" in obj.fields:
                        merged["SystemModstamp"] = now
                    if "LastModifiedById" in obj.fields:
                        merged["LastModifiedById"] = user_id or self.admin_user_id
                    self._derive(obj, merged, previous=before, now=now)
                    self._validate(obj, merged)
                    changed[rid] = merged
                    results.append(rid)
                except RecordError as err:
                    results.append(err)
            if changed:
                self._write_rows(obj, list(changed.values()))
        return results

    def _write_rows(self, obj: ObjectSpec, rows: list[dict[str, Any]]) -> None:
        """Replace existing rows' stored columns from full row dicts, through one UPDATE ... FROM."""
        fields = obj.stored_fields()
        arrow_types = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
                       "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "TIME": pa.time64("us")}

        def arrow_type(f: FieldSpec) -> pa.DataType:
            if f.duckdb_type.startswith("DECIMAL") and f.decimal_digits:
                return pa.decimal128(*f.decimal_digits)
            return arrow_types.get(f.duckdb_type, pa.string())

        schema = pa.schema([(f.name, arrow_type(f)) for f in fields])
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows], schema=schema)
        cur = self.conn.cursor()
        try:
            cur.register("incoming_rows", table)
            sets = ", ".join(f"{quote_ident(f.name)} = s.{quote_ident(f.name)}" for f in fields if f.name != "Id")
            cur.execute(f'UPDATE {obj.table} AS t SET {sets} FROM incoming_rows AS s WHERE t."Id" = s."Id"')
            cur.unregister("incoming_rows")
        finally:
            cur.close()

    def delete(self, object_name: str, record_id: str, *, user_id: str | None = None) -> None:
        """Soft delete: the record goes to the recycle bin, visible to queryAll with IsDeleted = true."""
        obj = self._object(object_name)
        with self.write_lock:
            current = self._require_live(obj, record_id)
            now = _naive_utc(self.clock.now())
            if "IsDeleted" not in obj.fields:
                raise RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support delete")
            self.conn.execute(
                f'UPDATE {obj.table} SET "IsDeleted" = true, "SystemModstamp" = ?, "LastModifiedDate" = ?, '
                f'"LastModifiedById" = ? WHERE "Id" = ?',
                [now, now, user_id or self.admin_user_id, current["Id"]],
            )
            self.conn.execute(f"INSERT INTO {DELETED_LOG} VALUES (?, ?, ?)", [obj.name, current["Id"], now])

    def undelete(self, object_name: str, record_id: str) -> None:
        obj = self._object(object_name)
        with self.write_lock:
            rec = self.get(obj.name, record_id, include_deleted=True)
            if rec is None or not rec.get("IsDeleted"):
                raise RecordError("UNDELETE_FAILED", "Entity is not in the recycle bin")
            now = _naive_utc(self.clock.now())
            self.conn.execute(
                f'UPDATE {obj.table} SET "IsDeleted" = false, "SystemModstamp" = ? WHERE "Id" = ?',
                [now, rec["Id"]],
            )
            self.conn.execute(f"DELETE FROM {DELETED_LOG} WHERE ObjectName = ? AND Id = ?", [obj.name, rec["Id"]])

    def hard_delete(self, object_name: str, record_id: str) -> None:
        """Remove a record without a trace (Bulk hardDelete, or the recycle bin emptied)."""
        obj = self._object(object_name)
        with self.write_lock:
            rid = self._normalise_id(record_id)
            if rid is None or self.get(obj.name, rid, include_deleted=True) is None:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
            self.conn.execute(f'DELETE FROM {obj.table} WHERE "Id" = ?', [rid])
            self.conn.execute(f"DELETE FROM {DELETED_LOG} WHERE ObjectName = ? AND Id = ?", [obj.name, rid])

    def add_column(self, object_name: str, spec: FieldSpec) -> None:
        """Add a field at run time: the catalog entry and its column (null for existing rows)."""
        obj = self._object(object_name)
        with self.write_lock:
            self.catalog.add_field(obj.name, spec)
            if spec.duckdb_type:
                self.conn.execute(f"ALTER TABLE {obj.table} ADD COLUMN {quote_ident(spec.name)} {spec.duckdb_type}")

    # -- helpers -------------------------------------------------------------------------------------
    def _object(self, name: str) -> ObjectSpec:
        obj = self.catalog.object(name)
        if obj is None:
            raise RecordError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return obj

    @staticmethod
    def _normalise_id(record_id: str) -> str | None:
        if not isinstance(record_id, str) or not is_valid_id(record_id):
            return None
        return to_18(record_id)

    def _require_live(self, obj: ObjectSpec, record_id: Any) -> dict[str, Any]:
        rid = self._normalise_id(record_id) if isinstance(record_id, str) else None
        if rid is None or not rid.startswith(obj.key_prefix):
            label = obj.describe_top.get("label", obj.name)
            raise RecordError("MALFORMED_ID", f"{label} ID: id value of incorrect type: {record_id}", ["Id"])
        rec = self.get(obj.name, rid, include_deleted=True)
        if rec is None or rec.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        return rec

    def _coerce_values(self, obj: ObjectSpec, values: dict[str, Any], *, for_create: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key.lower() in ("attributes", "id"):
                continue
            f = self.catalog.readable_field(obj, key)
            if f is None:
                raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key])
            allowed = f.createable if for_create else f.updateable
            if not allowed or f.is_compound:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security settings of this "
                    "field and verify that it is read/write for your profile or permission set.",
                    [f.name],
                )
            out[f.name] = coerce_value(f, value)
        return out

    def _check_required(self, obj: ObjectSpec, row: dict[str, Any]) -> None:
        missing = [f.name for f in obj.stored_fields()
                   if not f.nillable and f.createable and not f.raw.get("defaultedOnCreate")
                   and f.type != "boolean" and row.get(f.name) is None]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              missing)

    def _validate(self, obj: ObjectSpec, row: dict[str, Any]) -> None:
        for (obj_name, field_name), rule in self.validation_rules.items():
            if obj_name.lower() == obj.name.lower():
                message = rule(row.get(field_name), row)
                if message:
                    raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, [])

    def _derive(self, obj: ObjectSpec, row: dict[str, Any], *, previous: dict[str, Any] | None,
                now: datetime) -> None:
        """Read-only fields a real org computes from others."""
        if obj.name == "Opportunity" and row.get("StageName") is not None:
            row["IsClosed"] = row["StageName"] in CLOSED_STAGES
            row["IsWon"] = row["StageName"] == CLOSED_WON
        elif obj.name == "Case" and row.get("Status") is not None:
            closed = row["Status"] in CLOSED_CASE_STATUSES
            was_closed = bool(previous and previous.get("IsClosed"))
            row["IsClosed"] = closed
            if closed and not was_closed:
                row["ClosedDate"] = now
            elif not closed:
                row["ClosedDate"] = None
        elif obj.name == "Task":
            row["IsClosed"] = row.get("Status") in CLOSED_TASK_STATUSES
            row["IsHighPriority"] = row.get("Priority") == "High"
            if row["IsClosed"] and not (previous and previous.get("IsClosed")):
                row["CompletedDateTime"] = now
        if obj.name in ("Contact", "User") and ("LastName" in row or "FirstName" in row):
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
        for f in obj.fields.values():
            if f.formula is not None:
                row[f.name] = f.formula(row)


_WIDE = Context(prec=100)  # room to round any in-range value of a 38-digit field


def _exact_number(f: FieldSpec, value: Any) -> Decimal | float:
    """A number field's value as the org keeps it: an exact decimal rounded to the field's scale (half up),
    refused beyond its precision. Input may be JSON (int, Decimal, float) or CSV text (`1.2345678E7`)."""
    if isinstance(value, bool):
        raise ValueError
    try:
        number = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError from None
    if not number.is_finite():
        raise ValueError
    digits = f.decimal_digits
    precision, scale = digits if digits else (18, 0)
    limit = Decimal(10) ** (precision - scale)
    rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_WIDE) \
        if abs(number) < limit else number
    if abs(rounded) >= limit:
        raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                          f"{f.label}: value outside of valid range on numeric field: {value}", [f.name])
    return rounded if digits else float(rounded)


def coerce_value(f: FieldSpec, value: Any) -> Any:
    """Turn a JSON or CSV input value into the stored type, with the org's errors for bad values."""
    if value is None or (isinstance(value, str) and value == ""):  # a real org stores no empty strings
        if not f.nillable and f.type != "boolean":
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name])
        return None
    t = f.type
    try:
        if t == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if t in ("int", "long"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if t in ("double", "currency", "percent"):
            return _exact_number(f, value)
        if t == "date":
            if isinstance(value, date) and not isinstance(value, datetime):
                return value
            return date.fromisoformat(str(value)[:10])
        if t == "datetime":
            if isinstance(value, datetime):
                return _naive_utc(value)
            text = str(value).replace("Z", "+00:00")
            if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
                text = text[:-2] + ":" + text[-2:]
            return _naive_utc(datetime.fromisoformat(text))
    except RecordError:
        raise
    except (TypeError, ValueError):
        raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label}: value not of required type: {value}",
                          [f.name]) from None
    text = value if isinstance(value, str) else str(value)
    if t in ("id", "reference"):
        if not is_valid_id(text):
            raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {text}", [f.name])
        return to_18(text)
    max_len = f.raw.get("length") or 0
    if max_len and len(text) > max_len:
        raise RecordError("STRING_TOO_LONG", f"{f.label}: data value too large: {text[:40]} (max length={max_len})",
                          [f.name])
    if t == "picklist" and f.raw.get("restrictedPicklist") and text not in f.picklist_values:
        raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                          f"{f.label}: bad value for restricted picklist field: {text}", [f.name])
    return text

