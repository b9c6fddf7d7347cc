"""A deterministic generator of a realistic B2B org for the local Salesforce-compatible server.

`generate_org(store, records, seed=..., now=...)` fills an `OrgStore` with users, accounts, contacts,
opportunities, cases, case comments, tasks and events whose shape matches what a customer-success org
looks like through the API: record types, picklist values from the describes, parent/child references
that always resolve, audit timestamps spread over ~3 years (denser recently, with ties to the
millisecond so sync windows have to break ties by Id), a recycle bin, and the custom fields Sonora reads
(ARR, contract dates, tier, CSM, NPS ...).

How it stays fast at millions of records: everything is vectorised with numpy and turned into pyarrow
columns with pyarrow.compute string kernels, then appended with `store.load_arrow` in chunks of
`CHUNK_ROWS`. Each object is built in two steps:

* a *skeleton* - the whole-object numeric arrays other objects depend on (parent index, created time,
  status, deletion), drawn from one random stream per object;
* *chunks* - the cosmetic columns (names, phones, subjects ...), drawn from a random stream seeded by
  (seed, object, chunk number), so memory stays bounded and the output never depends on timing.

Same (records, seed, now) -> identical data, byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sonora_pipeline.localorg.schema import ObjectSpec
from sonora_pipeline.localorg.store import DELETED_LOG, OrgStore

CHUNK_ROWS = 100_000

# Share of the requested record total per object (the rest goes to users and record types).
SHARES: dict[str, float] = {
    "Account": 0.08, "Contact": 0.25, "Opportunity": 0.10, "Case": 0.08, "CaseComment": 0.07,
    "Task": 0.25, "Event": 0.15,
}
# Stable small integers that tag each object's random streams.
_STREAM_TAGS = {name: i for i, name in enumerate(
    ["User", "RecordType", "Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event"])}

MS = 1
SECOND = 1000 * MS
HOUR = 3600 * SECOND
DAY = 24 * HOUR
HISTORY = 3 * 365 * DAY          # how far back the org's activity goes
RECYCLE_WINDOW = 14 * DAY        # soft deletes are recent: the recycle bin keeps ~15 days
ARCHIVE_AGE_DAYS = 365           # activities older than this are archived, as in a real org

ACCOUNT_DELETE_RATE = 0.01       # accounts deleted (cascading to their children)
LEAF_DELETE_RATE = 0.005         # tasks, events and comments deleted on their own


@dataclass
class GeneratedOrg:
    """What `generate_org` produced: rows per object (deleted ones included) and who runs the API."""

    counts: dict[str, int]
    deleted: dict[str, int]
    run_as_user_id: str
    admin_user_id: str
    user_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# =====================================================================================================
# Word lists. Kept small but combinatorial so a million records still look varied; a few entries carry
# non-ASCII characters, apostrophes and commas because exports must escape and encode them correctly.
# =====================================================================================================

_NAME_ROOTS = [  # (display, ascii for domains)
    ("North", "north"), ("Blue", "blue"), ("Silver", "silver"), ("Iron", "iron"), ("Red", "red"),
    ("Green", "green"), ("Bright", "bright"), ("Clear", "clear"), ("Deep", "deep"), ("High", "high"),
    ("Lake", "lake"), ("Oak", "oak"), ("Pine", "pine"), ("Stone", "stone"), ("Sun", "sun"),
    ("Star", "star"), ("Summit", "summit"), ("Cedar", "cedar"), ("Maple", "maple"), ("River", "river"),
    ("Harbor", "harbor"), ("Granite", "granite"), ("Falcon", "falcon"), ("Eagle", "eagle"),
    ("Apex", "apex"), ("Nova", "nova"), ("Terra", "terra"), ("Vertex", "vertex"), ("Quantum", "quantum"),
    ("Atlas", "atlas"), ("Crystal", "crystal"), ("Golden", "golden"), ("Swift", "swift"),
    ("Rapid", "rapid"), ("Prime", "prime"), ("Union", "union"), ("Pacific", "pacific"),
    ("Atlantic", "atlantic"), ("Alpine", "alpine"), ("Meridian", "meridian"), ("Horizon", "horizon"),
    ("Polar", "polar"), ("Copper", "copper"), ("Cobalt", "cobalt"), ("Amber", "amber"),
    ("Willow", "willow"), ("Aspen", "aspen"), ("Ever", "ever"), ("Lumen", "lumen"), ("West", "west"),
    ("East", "east"), ("South", "south"), ("Fjäll", "fjall"), ("Über", "uber"), ("Sakura", "sakura"),
    ("Fuji", "fuji"), ("Søn", "son"), ("Côte", "cote"), ("Brisa", "brisa"), ("Kilo", "kilo"),
]
_NAME_STEMS = [
    "wind", "stone", "field", "bridge", "point", "gate", "view", "wave", "crest", "ridge", "brook",
    "light", "works", "line", "path", "core", "stack", "forge", "spring", "dale", "haven", "port",
    "wood", "mark", "shore", "vale", "ford", "well", "rock", "peak",
]
_NAME_SECTORS = [
    "Analytics", "Systems", "Logistics", "Health", "Foods", "Energy", "Capital", "Labs", "Networks",
    "Software", "Robotics", "Media", "Manufacturing", "Partners", "Solutions", "Technologies", "Pharma",
    "Motors", "Retail", "Consulting", "Materials", "Biosciences", "Dynamics", "Holdings", "Insurance",
    "Aerospace", "Telecom", "Devices",
]
_LEGAL_SUFFIXES = ["Inc.", ", Inc.", "LLC", "Corp.", "Ltd.", "GmbH", "S.A.", "Group", "& Co.", "AG", "plc",
                   "K.K.", ""]
_LEGAL_WEIGHTS = [18, 6, 14, 10, 8, 7, 4, 8, 3, 3, 3, 2, 14]
_TLDS = [".com", ".com", ".com", ".io", ".net", ".de", ".co.uk", ".fr", ".co.jp", ".ca"]

_FIRST_NAMES = [  # (display, ascii for e-mail addresses)
    ("James", "james"), ("Mary", "mary"), ("Robert", "robert"), ("Patricia", "patricia"),
    ("John", "john"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
    ("David", "david"), ("Elizabeth", "elizabeth"), ("William", "william"), ("Barbara", "barbara"),
    ("Richard", "richard"), ("Susan", "susan"), ("Joseph", "joseph"), ("Jessica", "jessica"),
    ("Thomas", "thomas"), ("Sarah", "sarah"), ("Daniel", "daniel"), ("Karen", "karen"),
    ("Priya", "priya"), ("Arjun", "arjun"), ("Wei", "wei"), ("Mei", "mei"), ("Hiroshi", "hiroshi"),
    ("Yuki", "yuki"), ("Olga", "olga"), ("Dmitri", "dmitri"), ("Fatima", "fatima"), ("Omar", "omar"),
    ("José", "jose"), ("María", "maria"), ("Zoë", "zoe"), ("Søren", "soren"), ("Łukasz", "lukasz"),
    ("François", "francois"), ("Chloé", "chloe"), ("Jürgen", "jurgen"), ("Aisha", "aisha"),
    ("Kwame", "kwame"), ("Liam", "liam"), ("Emma", "emma"), ("Noah", "noah"), ("Olivia", "olivia"),
    ("Lucas", "lucas"), ("Sofia", "sofia"), ("Mateo", "mateo"), ("Isabella", "isabella"),
]
_LAST_NAMES = [
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
    ("Rodriguez", "rodriguez"), ("Martinez", "martinez"), ("Hernandez", "hernandez"), ("Lopez", "lopez"),
    ("Wilson", "wilson"), ("Anderson", "anderson"), ("Taylor", "taylor"), ("Moore", "moore"),
    ("Jackson", "jackson"), ("Martin", "martin"), ("Lee", "lee"), ("Thompson", "thompson"),
    ("White", "white"), ("Harris", "harris"), ("Clark", "clark"), ("Lewis", "lewis"),
    ("O'Brien", "obrien"), ("Müller", "mueller"), ("Schäfer", "schaefer"), ("García", "garcia"),
    ("Nguyễn", "nguyen"), ("Østergaard", "ostergaard"), ("Kowalski", "kowalski"), ("Tanaka", "tanaka"),
    ("Suzuki", "suzuki"), ("Patel", "patel"), ("Singh", "singh"), ("Chen", "chen"), ("Wang", "wang"),
    ("Kim", "kim"), ("Park", "park"), ("Ivanova", "ivanova"), ("Dubois", "dubois"), ("Rossi", "rossi"),
    ("Bianchi", "bianchi"), ("Novák", "novak"), ("Okafor", "okafor"), ("Mensah", "mensah"),
    ("Cohen", "cohen"), ("Silva", "silva"), ("Santos", "santos"), ("Fischer", "fischer"),
]
_TITLES = [  # (title, department, persona index into Persona__c values or -1)
    ("Chief Executive Officer", "Executive", 0), ("Chief Technology Officer", "Executive", 0),
    ("VP of Operations", "Operations", 2), ("VP of Engineering", "Engineering", 2),
    ("Director of IT", "IT", 2), ("IT Manager", "IT", 3), ("Systems Administrator", "IT", 3),
    ("Salesforce Administrator", "IT", 3), ("Operations Manager", "Operations", 1),
    ("Head of Customer Success", "Customer Success", 1), ("Product Manager", "Product", 1),
    ("Procurement Manager", "Finance", 2), ("Finance Director", "Finance", 2),
    ("Software Engineer", "Engineering", 4), ("Data Analyst", "Analytics", 4),
    ("Support Specialist", "Support", 4), ("Marketing Manager", "Marketing", 4),
    ("Account Coordinator", "Sales", 4), ("Business Analyst", "Operations", 4),
]
_TITLE_WEIGHTS = [2, 2, 3, 3, 4, 6, 6, 4, 6, 4, 6, 4, 3, 10, 8, 8, 5, 5, 6]

_CITIES = [  # (city, state, country, postal prefix, lat, lon, phone prefix, postal digits to append)
    ("San Francisco", "CA", "United States", "941", 37.7749, -122.4194, "+1 415", 2),
    ("New York", "NY", "United States", "100", 40.7128, -74.0060, "+1 212", 2),
    ("Austin", "TX", "United States", "787", 30.2672, -97.7431, "+1 512", 2),
    ("Chicago", "IL", "United States", "606", 41.8781, -87.6298, "+1 312", 2),
    ("Seattle", "WA", "United States", "981", 47.6062, -122.3321, "+1 206", 2),
    ("Boston", "MA", "United States", "021", 42.3601, -71.0589, "+1 617", 2),
    ("Atlanta", "GA", "United States", "303", 33.7490, -84.3880, "+1 404", 2),
    ("Denver", "CO", "United States", "802", 39.7392, -104.9903, "+1 303", 2),
    ("Toronto", "ON", "Canada", "M5V ", 43.6532, -79.3832, "+1 416", 0),
    ("London", None, "United Kingdom", "EC1A 1BB", 51.5072, -0.1276, "+44 20", 0),
    ("Manchester", None, "United Kingdom", "M1 1AE", 53.4808, -2.2426, "+44 161", 0),
    ("Berlin", "BE", "Germany", "101", 52.5200, 13.4050, "+49 30", 2),
    ("München", "BY", "Germany", "803", 48.1351, 11.5820, "+49 89", 2),
    ("Paris", None, "France", "750", 48.8566, 2.3522, "+33 1", 2),
    ("Zürich", "ZH", "Switzerland", "80", 47.3769, 8.5417, "+41 44", 2),
    ("Amsterdam", "NH", "Netherlands", "101", 52.3676, 4.9041, "+31 20", 1),
    ("Stockholm", None, "Sweden", "111 ", 59.3293, 18.0686, "+46 8", 2),
    ("東京", "Tokyo", "Japan", "100-00", 35.6762, 139.6503, "+81 3", 2),
    ("Sydney", "NSW", "Australia", "20", 33.8688 * -1, 151.2093, "+61 2", 2),
    ("São Paulo", "SP", "Brazil", "01310-", -23.5505, -46.6333, "+55 11", 3),
]
_CITY_WEIGHTS = [9, 10, 6, 6, 5, 5, 4, 4, 4, 7, 2, 4, 3, 4, 2, 2, 2, 3, 3, 2]
_STREET_NAMES = ["Main", "Market", "Oak", "Pine", "Maple", "Cedar", "Elm", "Park", "Lake", "Hill",
                 "Washington", "Mission", "Harbor", "Broadway", "King", "Queen", "Station", "Mill"]
_STREET_KINDS = ["St", "Ave", "Blvd", "Rd", "Way", "Street", "Lane", "Drive"]

_OPP_LABELS = ["New Business", "Expansion", "Renewal", "Upsell - Seats", "Add-on: Analytics",
               "Pilot", "Multi-year Renewal", "Platform Migration", "Professional Services"]
_CASE_SUBJECTS = [
    "Unable to log in", "Export job fails with timeout", "Dashboard shows wrong totals",
    "Question about invoice", "Integration sync is slow", "Feature request: bulk edit",
    "Password reset email not received", "API limit exceeded", "Data missing after import",
    "SSO configuration help", "Report \"Pipeline by Stage\" is empty", "Billing address, VAT number update",
    "Error 500 on save", "Mobile app crashes on start", "Permission error for new user",
]
_COMMENT_BODIES = [
    "Called the customer, no answer. Will retry tomorrow.",
    'Customer reports "timeout" errors when exporting, see attached log.',
    "Reproduced in sandbox.\nEscalating to engineering.",
    'Workaround applied: set "batch size" to 200, re-ran the job.\nConfirmed fixed by the customer.',
    "Vielen Dank für die schnelle Hilfe! Grüße aus München",
    "日本のお客様から問い合わせがありました。明日フォローします。",
    "Waiting on customer, they are out of office until Monday.",
    "Root cause: expired certificate on the customer's proxy, renewed, closing.",
    "Sent KB article 1042, 2077 and 3111.",
    "Customer confirmed, ok to close.",
    "Follow-up: user said \"it works now, thanks!\"",
    "Merci, le problème est résolu. À bientôt !",
    "Internal note: check quota usage, limits reached twice this week.",
]
_TASK_SUBJECTS = ["Call", "Email", "Follow up on renewal", "Send proposal", "Quarterly business review prep",
                  "Check in with champion", "Onboarding call", "Send Letter/Quote", "Other",
                  "Review health score", "Escalation follow-up"]
_EVENT_SUBJECTS = ["Meeting", "Call", "QBR", "Onboarding kickoff", "Product demo", "Executive briefing",
                   "Renewal discussion", "Training session", "Other"]
_EVENT_LOCATIONS = ["Zoom", "Google Meet", "Microsoft Teams", "Customer HQ", "Our office", "Phone"]

_USER_ROLES = [  # (title, department, share)
    ("Account Executive", "Sales", 0.40),
    ("Customer Success Manager", "Customer Success", 0.25),
    ("Support Engineer", "Support", 0.25),
    ("Sales Manager", "Sales", 0.10),
]
ROLE_AE, ROLE_CSM, ROLE_SUPPORT, ROLE_MANAGER = range(4)

# Opportunity stage -> (Probability, ForecastCategory, ForecastCategoryName), as a default org maps them.
_STAGE_RULES = {
    "Prospecting": (10, "Pipeline", "Pipeline"),
    "Qualification": (10, "Pipeline", "Pipeline"),
    "Needs Analysis": (20, "Pipeline", "Pipeline"),
    "Value Proposition": (50, "Pipeline", "Pipeline"),
    "Id. Decision Makers": (60, "Pipeline", "Pipeline"),
    "Perception Analysis": (70, "Pipeline", "Pipeline"),
    "Proposal/Price Quote": (75, "BestCase", "Best Case"),
    "Negotiation/Review": (90, "Forecast", "Commit"),
    "Closed Won": (100, "Closed", "Closed"),
    "Closed Lost": (0, "Omitted", "Omitted"),
}


# =====================================================================================================
# Low-level helpers: Ids, arrow columns, random choices.
# =====================================================================================================

_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_SUFFIX = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", dtype=np.uint8)


def fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """An arrow string array from an (n, width) uint8 matrix, without a Python loop."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def make_ids(prefix: str, start: int, count: int, pod: str = "5g0") -> pa.Array:
    """Ids `start .. start+count-1` of a key prefix; equal to `ids.make_id` for each, but vectorised
    (a million Python calls would cost seconds)."""
    nums = np.arange(start, start + count, dtype=np.int64)
    chars = np.empty((count, 18), dtype=np.uint8)
    chars[:, :6] = np.frombuffer((prefix + pod).encode("ascii"), dtype=np.uint8)
    for pos in range(14, 5, -1):  # 9 base62 digits, least significant last
        nums, digit = np.divmod(nums, 62)
        chars[:, pos] = _BASE62[digit]
    upper = ((chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))).reshape(count, 3, 5)
    bits = (upper * (1 << np.arange(5))).sum(axis=2)
    chars[:, 15:] = _SUFFIX[bits]
    return fixed_width_strings(chars)


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, type=pa.string())


def _take(values: pa.Array | list[str], idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """values[idx] as an arrow array, null where `null` is true."""
    if isinstance(values, list):
        values = _strings(values)
    out = pc.take(values, pa.array(np.asarray(idx, dtype=np.int64)))
    return _null_where(out, null)


def _null_where(arr: pa.Array, null: np.ndarray | None) -> pa.Array:
    if null is None or not null.any():
        return arr
    return pc.if_else(pa.array(null), pa.scalar(None, arr.type), arr)


def _join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _digits(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """Random zero-padded digit strings (phone numbers, postal codes)."""
    nums = rng.integers(0, 10 ** width, n)
    return pc.utf8_lpad(pc.cast(pa.array(nums), pa.string()), width=width, padding="0")


def _timestamps(ms: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), type=pa.timestamp("ms"), mask=null)


def _dates(ms_or_days: np.ndarray, *, are_days: bool = False, null: np.ndarray | None = None) -> pa.Array:
    days = ms_or_days if are_days else np.floor_divide(ms_or_days, DAY)
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=null)


def _numbers(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=null)


def _bools(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=bool))


def _weighted(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _blocks(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For children stored contiguously per parent: (parent index of each child, first child per parent)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return np.repeat(np.arange(len(counts)), counts), starts


def _pick_in_block(rng: np.random.Generator, parent: np.ndarray, starts: np.ndarray,
                   counts: np.ndarray) -> np.ndarray:
    """A random child (global index) of each given parent; -1 where the parent has none."""
    c = counts[parent]
    pick = starts[parent] + np.floor(rng.random(len(parent)) * c).astype(np.int64)
    return np.where(c > 0, pick, -1)


def _ids_or_null(ids: pa.Array, idx: np.ndarray) -> pa.Array:
    """ids[idx], null where idx < 0 (optional references)."""
    missing = idx < 0
    return _take(ids, np.where(missing, 0, idx), missing)


def _spread_after(rng: np.random.Generator, start_ms: np.ndarray, now_ms: int, power: float = 1.5) -> np.ndarray:
    """A time between `start_ms` and now, denser near now (recent activity dominates real orgs)."""
    v = 1.0 - rng.random(len(start_ms)) ** power
    return start_ms + ((now_ms - start_ms) * v).astype(np.int64)


def _picklist(obj: ObjectSpec, field_name: str, wanted: list[str] | None = None) -> list[str]:
    """Active picklist values of a field, optionally restricted (in order) to `wanted` ones present,
    so the generator never writes a value the describe does not offer."""
    values = obj.fields[field_name].picklist_values
    if wanted is None:
        return values
    chosen = [v for v in wanted if v in values]
    if not chosen:
        raise ValueError(f"{obj.name}.{field_name} offers none of {wanted}")
    return chosen


# =====================================================================================================
# Shared state and audit fields.
# =====================================================================================================

@dataclass
class _Context:
    store: OrgStore
    seed: int
    now_ms: int
    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    deleted_log: list[pa.Table] = field(default_factory=list)

    def rng(self, object_name: str, chunk: int = -1) -> np.random.Generator:
        """One independent stream per (object, chunk): chunk -1 is the object's skeleton stream."""
        return np.random.default_rng([self.seed, _STREAM_TAGS[object_name], chunk + 1])

    def obj(self, name: str) -> ObjectSpec:
        spec = self.store.catalog.object(name)
        assert spec is not None, name
        return spec


@dataclass
class _Users:
    ids: pa.Array
    role: np.ndarray  # role per user; index 0 is the integration user (role -1)

    def of_role(self, role: int) -> np.ndarray:
        found = np.flatnonzero(self.role == role)
        return found if len(found) else np.flatnonzero(self.role >= 0)

    def humans(self) -> np.ndarray:
        return np.flatnonzero(self.role >= 0)


@dataclass
class _Audit:
    """Audit fields of one object's rows, whole-object arrays (times in ms since the epoch, UTC)."""

    created: np.ndarray
    modified: np.ndarray
    stamp: np.ndarray
    created_by: np.ndarray
    modified_by: np.ndarray
    deleted: np.ndarray
    owner: np.ndarray | None = None


def _make_audit(rng: np.random.Generator, created: np.ndarray, now_ms: int, users: _Users,
                owner: np.ndarray | None, floor: np.ndarray | None = None) -> _Audit:
    """LastModifiedDate >= max(CreatedDate, floor) and SystemModstamp >= LastModifiedDate.

    About a third of rows were never edited. A few percent were touched by one of a handful of
    "data loader" batch updates, so they share a SystemModstamp to the millisecond (sync windows must
    break such ties by Id). A few have a SystemModstamp strictly later than LastModifiedDate (system
    automation that does not count as a user edit).
    """
    n = len(created)
    base = created if floor is None else np.maximum(created, floor)
    edited = rng.random(n) < 0.65
    modified = np.where(edited, _spread_after(rng, base, now_ms), base)

    n_batches = max(2, n // 2000)
    batch_times = now_ms - (HISTORY * rng.random(n_batches) ** 2).astype(np.int64)
    batch_time = batch_times[rng.integers(0, n_batches, n)]
    in_batch = (rng.random(n) < 0.05) & (batch_time >= base)
    modified = np.where(in_batch, batch_time, modified)

    bump = (rng.random(n) < 0.03) & ~in_batch
    later = np.minimum(now_ms, modified + rng.integers(1, 6 * HOUR, n))
    stamp = np.where(bump, later, modified)

    humans = users.humans()
    random_human = humans[rng.integers(0, len(humans), n)]
    by_owner = owner if owner is not None else random_human
    created_by = np.where(rng.random(n) < 0.25, 0, by_owner)
    edited_by = np.where(rng.random(n) < 0.3, 0, random_human)
    modified_by = np.where(in_batch, 0, np.where(edited, edited_by, created_by))
    return _Audit(created=created, modified=modified, stamp=stamp, created_by=created_by,
                  modified_by=modified_by, deleted=np.zeros(n, dtype=bool), owner=owner)


def _soft_delete(audit: _Audit, mask: np.ndarray, when: np.ndarray) -> None:
    """Mark rows deleted at `when` (never before they were created or last edited): deleting a record
    moves LastModifiedDate and SystemModstamp to the deletion time, as `OrgStore.delete` does."""
    at = np.maximum(when, audit.stamp)
    audit.deleted = audit.deleted | mask
    audit.modified = np.where(mask, at, audit.modified)
    audit.stamp = np.where(mask, at, audit.stamp)


def _recent_deletion_times(rng: np.random.Generator, n: int, now_ms: int) -> np.ndarray:
    return now_ms - (rng.random(n) * RECYCLE_WINDOW).astype(np.int64)


def _cascade(audit: _Audit, parent_deleted: np.ndarray, parent_stamp: np.ndarray,
             parent_idx: np.ndarray) -> None:
    """Children of a deleted parent go to the recycle bin with it (same deletion time)."""
    mask = parent_deleted[parent_idx]
    _soft_delete(audit, mask, parent_stamp[parent_idx])


# =====================================================================================================
# Emitting rows: chunks of arrow tables into the store.
# =====================================================================================================

def _emit(ctx: _Context, object_name: str, ids: Callable[[int, int], pa.Array], audit: _Audit,
          build: Callable[[np.random.Generator, int, int], dict[str, pa.Array]]) -> None:
    """Build and load an object's rows chunk by chunk; add Id, audit fields, IsDeleted, OwnerId, and
    false for every non-nillable boolean the builder left unset (the store expects them non-null)."""
    obj = ctx.obj(object_name)
    n = len(audit.created)
    users = ctx.store_users
    booleans = [f.name for f in obj.stored_fields() if f.type == "boolean" and not f.nillable]
    n_chunks = math.ceil(n / CHUNK_ROWS)
    for chunk in range(n_chunks):
        lo, hi = chunk * CHUNK_ROWS, min(n, (chunk + 1) * CHUNK_ROWS)
        part = slice(lo, hi)
        chunk_ids = ids(lo, hi)
        cols: dict[str, pa.Array] = {"Id": chunk_ids}
        cols.update(build(ctx.rng(object_name, chunk), lo, hi))
        cols["CreatedDate"] = _timestamps(audit.created[part])
        cols["LastModifiedDate"] = _timestamps(audit.modified[part])
        cols["SystemModstamp"] = _timestamps(audit.stamp[part])
        cols["CreatedById"] = _take(users.ids, audit.created_by[part])
        cols["LastModifiedById"] = _take(users.ids, audit.modified_by[part])
        if "IsDeleted" in obj.fields:
            cols["IsDeleted"] = _bools(audit.deleted[part])
        if audit.owner is not None and "OwnerId" in obj.fields and "OwnerId" not in cols:
            cols["OwnerId"] = _take(users.ids, audit.owner[part])
        for name in booleans:
            if name not in cols:
                cols[name] = _bools(np.zeros(hi - lo, dtype=bool))
        unknown = [c for c in cols if c not in obj.fields]
        assert not unknown, f"{object_name} has no fields {unknown}"
        ctx.store.load_arrow(object_name, pa.table(cols))
        dead = audit.deleted[part]
        if dead.any():
            ctx.deleted_log.append(pa.table({
                "ObjectName": pa.array([obj.name] * int(dead.sum()), type=pa.string()),
                "Id": chunk_ids.filter(pa.array(dead)),
                "DeletedDate": _timestamps(audit.stamp[part][dead]),
            }))
    ctx.counts[object_name] = n
    ctx.deleted[object_name] = int(audit.deleted.sum())


def _reserve(ctx: _Context, object_name: str, n: int) -> int:
    """Reserve the object's Id numbers so later API creates continue after the generated rows."""
    return ctx.store.ids.reserve(ctx.obj(object_name).key_prefix, max(n, 0)) if n else 0


def _all_ids(ctx: _Context, object_name: str, start: int, n: int) -> pa.Array:
    return make_ids(ctx.obj(object_name).key_prefix, start, n)


def _write_deleted_log(ctx: _Context) -> None:
    """Recycle-bin entries for every soft-deleted row (what getDeleted / queryAll rely on)."""
    if not ctx.deleted_log:
        return
    log = pa.concat_tables(ctx.deleted_log)
    store = ctx.store
    with store.write_lock:
        cur = store.conn.cursor()
        try:
            cur.register("deleted_rows", log)
            cur.execute(f"INSERT INTO {DELETED_LOG} (ObjectName, Id, DeletedDate) "
                        "SELECT ObjectName, Id, DeletedDate FROM deleted_rows")
            cur.unregister("deleted_rows")
        finally:
            cur.close()


# =====================================================================================================
# Planning.
# =====================================================================================================

def plan_counts(records: int) -> dict[str, int]:
    """Rows per object for an approximate total of `records` (users grow like sqrt(records))."""
    n_users = int(np.clip(round(0.3 * math.sqrt(max(records, 1))), 5, 400))
    rest = max(records - n_users - 3, 0)
    scale = rest / sum(SHARES.values())
    plan = {"User": n_users, "RecordType": 3}
    for name, share in SHARES.items():
        plan[name] = int(round(share * scale))
    plan["Account"] = max(plan["Account"], 1)
    return plan


def _to_ms(now: datetime) -> int:
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    epoch = datetime(1970, 1, 1)
    delta = now - epoch
    return (delta.days * DAY) + delta.seconds * SECOND + delta.microseconds // 1000


# =====================================================================================================
# Objects.
# =====================================================================================================

def _generate_users(ctx: _Context, n: int) -> _Users:
    """Owners: the integration (admin, run-as) user first, then sales, CSM and support staff."""
    start = _reserve(ctx, "User", n)
    ids = _all_ids(ctx, "User", start, n)
    rng = ctx.rng("User")
    role = np.concatenate([[-1], _weighted(rng, n - 1, [r[2] for r in _USER_ROLES])]).astype(np.int64)
    # Every role exists at least once so owners can always be drawn from it.
    for r in range(min(len(_USER_ROLES), n - 1)):
        role[1 + r] = r
    users = _Users(ids=ids, role=role)
    ctx.store_users = users  # type: ignore[attr-defined]

    created = ctx.now_ms - HISTORY - (rng.random(n) * 365 * DAY).astype(np.int64)
    created[0] = ctx.now_ms - HISTORY - 400 * DAY
    audit = _Audit(created=created, modified=created.copy(), stamp=created.copy(),
                   created_by=np.zeros(n, dtype=np.int64), modified_by=np.zeros(n, dtype=np.int64),
                   deleted=np.zeros(n, dtype=bool))

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k = hi - lo
        first = crng.integers(0, len(_FIRST_NAMES), k)
        last = crng.integers(0, len(_LAST_NAMES), k)
        first_disp = _take([f[0] for f in _FIRST_NAMES], first)
        last_disp = _take([f[0] for f in _LAST_NAMES], last)
        number = pc.cast(pa.array(np.arange(lo, hi)), pa.string())
        login = _join(_take([f[1] for f in _FIRST_NAMES], first), ".",
                      _take([f[1] for f in _LAST_NAMES], last), number)
        titles = _take([r[0] for r in _USER_ROLES], np.maximum(role[lo:hi], 0))
        depts = _take([r[1] for r in _USER_ROLES], np.maximum(role[lo:hi], 0))
        cols = {
            "FirstName": first_disp, "LastName": last_disp,
            "Name": _join(first_disp, " ", last_disp),
            "Username": _join(login, "@sonora.localorg"),
            "Email": _join(login, "@sonora.example.com"),
            "Title": titles, "Department": depts,
            "IsActive": _bools(crng.random(k) >= 0.05),
            "UserType": _take(["Standard"], np.zeros(k, dtype=np.int64)),
        }
        if lo == 0:  # the integration user
            cols = {name: _replace_first(arr, value) for name, arr in cols.items() for value in [{
                "FirstName": "Integration", "LastName": "User", "Name": "Integration User",
                "Username": "integration@sonora.localorg", "Email": "integration@sonora.example.com",
                "Title": "System Administrator", "Department": "IT", "IsActive": True,
                "UserType": "Standard"}[name]]}
        return cols

    _emit(ctx, "User", lambda lo, hi: ids[lo:hi], audit, build)
    return users


def _replace_first(arr: pa.Array, value: object) -> pa.Array:
    values = arr.to_pylist()
    values[0] = value
    return pa.array(values, type=arr.type)


def _generate_record_types(ctx: _Context) -> None:
    """The Account record types the catalog describes, with the describe's fixed Ids."""
    rts = ctx.obj("Account").record_types
    n = len(rts)
    created = np.full(n, ctx.now_ms - HISTORY - 390 * DAY, dtype=np.int64)
    audit = _Audit(created=created, modified=created.copy(), stamp=created.copy(),
                   created_by=np.zeros(n, dtype=np.int64), modified_by=np.zeros(n, dtype=np.int64),
                   deleted=np.zeros(n, dtype=bool))
    ids = _strings([rt["recordTypeId"] for rt in rts])

    def build(_rng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        return {
            "Name": _strings([rt["name"] for rt in rts[lo:hi]]),
            "DeveloperName": _strings([rt["developerName"] for rt in rts[lo:hi]]),
            "SobjectType": _strings(["Account"] * (hi - lo)),
            "IsActive": _bools(np.ones(hi - lo, dtype=bool)),
        }

    _emit(ctx, "RecordType", lambda lo, hi: ids[lo:hi], audit, build)


@dataclass
class _Accounts:
    ids: pa.Array
    names: pa.Array
    domains: pa.Array
    kind: np.ndarray            # 0 customer, 1 prospect, 2 partner
    owner: np.ndarray
    city: np.ndarray
    audit: _Audit
    # Children are stored contiguously per account: counts and first index per child object.
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    starts: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kind)


KIND_CUSTOMER, KIND_PROSPECT, KIND_PARTNER = 0, 1, 2
_KIND_DEVNAMES = ["Customer", "Prospect", "Partner"]


def arr_band(arr: np.ndarray) -> list[str | None]:
    """ARR_Band__c exactly as the formula field computes it (vectorised; NaN = no ARR = null)."""
    band = np.where(arr >= 250_000, "Enterprise", np.where(arr >= 50_000, "Mid-Market", "SMB")).astype(object)
    band[np.isnan(arr)] = None
    return list(band)


def _generate_accounts(ctx: _Context, n: int, plan: dict[str, int], users: _Users) -> _Accounts:
    """Accounts in creation order, so ParentId (an earlier account) is also an older account."""
    obj = ctx.obj("Account")
    rng = ctx.rng("Account")
    start = _reserve(ctx, "Account", n)
    ids = _all_ids(ctx, "Account", start, n)

    kind = _weighted(rng, n, [0.55, 0.33, 0.12])
    created = np.sort(ctx.now_ms - (HISTORY * rng.random(n) ** 1.6).astype(np.int64))
    employees = np.maximum(1, np.round(rng.lognormal(math.log(180), 1.4, n))).astype(np.int64)
    aes = users.of_role(ROLE_AE)
    owner = aes[rng.integers(0, len(aes), n)]
    city = _weighted(rng, n, _CITY_WEIGHTS)

    # Names and domains are needed by contacts and opportunities, so they are built once here.
    root = rng.integers(0, len(_NAME_ROOTS), n)
    stem = rng.integers(0, len(_NAME_STEMS), n)
    sector = rng.integers(0, len(_NAME_SECTORS), n)
    legal = _weighted(rng, n, _LEGAL_WEIGHTS)
    brand = _join(_take([r[0] for r in _NAME_ROOTS], root), _take(_NAME_STEMS, stem))
    names = _join(brand, " ", _take(_NAME_SECTORS, sector))
    suffix = _take(_LEGAL_SUFFIXES, legal)
    spaced = pc.if_else(pc.starts_with(suffix, ","), suffix, _join(" ", suffix))
    names = pc.utf8_rtrim_whitespace(_join(names, spaced))
    domains = _join(_take([r[1] for r in _NAME_ROOTS], root), _take(_NAME_STEMS, stem),
                    _take(_TLDS, rng.integers(0, len(_TLDS), n)))

    # ~10% have a parent: an earlier account (index 0 has none).
    parent = np.where((rng.random(n) < 0.10) & (np.arange(n) > 0),
                      np.floor(rng.random(n) * np.arange(n)).astype(np.int64), -1)

    audit = _make_audit(rng, created, ctx.now_ms, users, owner)
    # Deleted accounts are never parents, so no live account points at a recycled one.
    is_parent = np.zeros(n, dtype=bool)
    is_parent[parent[parent >= 0]] = True
    doomed = (rng.random(n) < ACCOUNT_DELETE_RATE) & ~is_parent
    _soft_delete(audit, doomed, _recent_deletion_times(rng, n, ctx.now_ms))

    accounts = _Accounts(ids=ids, names=names, domains=domains, kind=kind, owner=owner, city=city,
                         audit=audit)
    _plan_children(ctx, rng, accounts, employees, plan)

    # Customer economics: ARR (log-normal, a few >= 1e7), contract dates, tier, CSM.
    customer = kind == KIND_CUSTOMER
    arr = np.round(rng.lognormal(math.log(60_000), 1.25, n), 2)
    whales = rng.random(n) < 0.004
    arr = np.where(whales, np.round(rng.uniform(1e7, 8e7, n), 2), arr)
    arr = np.where(customer, arr, np.nan)
    end_offset = np.select(
        [rng.random(n) < 0.15, rng.random(n) < 0.55],
        [-rng.integers(1, 366, n), rng.integers(0, 181, n)],
        rng.integers(181, 3 * 365, n),
    )
    end_day = ctx.now_ms // DAY + end_offset
    start_day = end_day - np.array([365, 730, 1095])[_weighted(rng, n, [6, 3, 1])]
    csms = users.of_role(ROLE_CSM)
    csm = np.where(customer & (rng.random(n) < 0.85), csms[rng.integers(0, len(csms), n)], -1)
    revenue = np.round(employees * rng.lognormal(math.log(150_000), 0.6, n), -3)
    rt_ids = {rt["developerName"]: rt["recordTypeId"] for rt in obj.record_types}
    type_values = _account_types(obj)
    industries = _picklist(obj, "Industry")
    contact_counts, contact_starts = accounts.counts["Contact"], accounts.starts["Contact"]
    contact_start = _reserve_peek(ctx, "Contact")

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k = hi - lo
        part = slice(lo, hi)
        kinds = kind[part]
        type_idx = np.array([type_values[kd][i % len(type_values[kd])]
                             for kd, i in zip(kinds, crng.integers(0, 12, k))], dtype=np.int64)
        street, city_col, state, postal, country, lat, lon, accuracy, no_address = _addresses(
            crng, city[part])
        c_arr = arr[part]
        no_arr = np.isnan(c_arr)
        cust = kinds == KIND_CUSTOMER
        primary = np.where(contact_counts[part] > 0, contact_start + contact_starts[part], -1)
        cols = {
            "Name": names[lo:hi],
            "Type": _take(obj.fields["Type"].picklist_values, type_idx),
            "RecordTypeId": _take([rt_ids[d] for d in _KIND_DEVNAMES], kinds),
            "ParentId": _ids_or_null(ids, parent[part]),
            "ns__LinkedAccount__c": ids[lo:hi],  # required by its (managed) describe; links to itself
            "Primary_Contact__c": _ids_or_null_global(ctx, "Contact", primary),
            "Industry": _take(industries, crng.integers(0, len(industries), k), crng.random(k) < 0.05),
            "AnnualRevenue": _numbers(revenue[part], crng.random(k) < 0.2),
            "NumberOfEmployees": _numbers(employees[part], crng.random(k) < 0.1),
            "BillingStreet": street, "BillingCity": city_col, "BillingState": state,
            "BillingPostalCode": postal, "BillingCountry": country, "BillingLatitude": lat,
            "BillingLongitude": lon, "BillingGeocodeAccuracy": accuracy,
            "Phone": _null_where(_join(_take([c[6] for c in _CITIES], city[part]), " ",
                                       _digits(crng, k, 3), "-", _digits(crng, k, 4)), crng.random(k) < 0.1),
            "Website": _null_where(_join("https://www.", domains[lo:hi]), crng.random(k) < 0.1),
            "AccountSource": _take(_picklist(obj, "AccountSource"),
                                   crng.integers(0, len(_picklist(obj, "AccountSource")), k),
                                   crng.random(k) < 0.3),
            "Rating": _take(_picklist(obj, "Rating"), crng.integers(0, 3, k), crng.random(k) < 0.5),
            "ARR__c": _numbers(np.where(no_arr, 0.0, c_arr), no_arr),
            "ARR_Band__c": pa.array(arr_band(c_arr), type=pa.string()),
            "Contract_Start_Date__c": _dates(start_day[part], are_days=True, null=~cust),
            "Contract_End_Date__c": _dates(end_day[part], are_days=True, null=~cust),
            "Tier__c": _take(["Platinum", "Gold", "Silver", "Bronze"], _tier(np.where(no_arr, 0, c_arr)), ~cust),
            "Customer_Success_Manager__c": _ids_or_null(users.ids, csm[part]),
        }
        del no_address
        return cols

    _emit(ctx, "Account", lambda lo, hi: ids[lo:hi], audit, build)
    return accounts


def _account_types(obj: ObjectSpec) -> dict[int, list[int]]:
    """Per record-type kind, which Account.Type values fit it (as indices into the picklist)."""
    values = obj.fields["Type"].picklist_values
    wanted = {
        KIND_CUSTOMER: ["Customer - Direct", "Customer - Direct", "Customer - Channel"],
        KIND_PROSPECT: ["Prospect", "Prospect", "Prospect", "Other"],
        KIND_PARTNER: ["Channel Partner / Reseller", "Installation Partner", "Technology Partner"],
    }
    return {kind: [values.index(v) for v in names if v in values] or [0] for kind, names in wanted.items()}


def _tier(arr: np.ndarray) -> np.ndarray:
    return np.select([arr >= 500_000, arr >= 100_000, arr >= 25_000], [0, 1, 2], 3)


def _addresses(rng: np.random.Generator, city: np.ndarray):
    """Address components around a city; ~10% of rows have none, some streets span two lines."""
    k = len(city)
    none = rng.random(k) < 0.10
    number = pc.cast(pa.array(rng.integers(1, 9999, k)), pa.string())
    street = _join(number, " ", _take(_STREET_NAMES, rng.integers(0, len(_STREET_NAMES), k)), " ",
                   _take(_STREET_KINDS, rng.integers(0, len(_STREET_KINDS), k)))
    suite = _join("\nSuite ", pc.cast(pa.array(rng.integers(100, 2000, k)), pa.string()))
    street = pc.if_else(pa.array(rng.random(k) < 0.15), _join(street, suite), street)
    extra_digits = np.array([c[7] for c in _CITIES])[city]
    digits = pc.utf8_slice_codeunits(_digits(rng, k, 3), 0, 3)
    tail = pc.utf8_slice_codeunits(digits, pa.scalar(0), 1)  # placeholder to keep types aligned
    del tail
    postal_tail = _join(
        pc.utf8_slice_codeunits(digits, 0, 1), pc.utf8_slice_codeunits(digits, 1, 2),
        pc.utf8_slice_codeunits(digits, 2, 3))
    take_n = [pc.utf8_slice_codeunits(postal_tail, 0, d) for d in range(4)]
    tails = take_n[0]
    for d in range(1, 4):
        tails = pc.if_else(pa.array(extra_digits == d), take_n[d], tails)
    postal = _join(_take([c[3] for c in _CITIES], city), tails)
    lat = np.round(np.array([c[4] for c in _CITIES])[city] + rng.normal(0, 0.05, k), 6)
    lon = np.round(np.array([c[5] for c in _CITIES])[city] + rng.normal(0, 0.05, k), 6)
    states = [c[1] for c in _CITIES]
    state_null = np.array([s is None for s in states])[city] | none
    accuracy = _weighted(rng, k, [70, 10, 5, 10, 5])
    acc_values = ["Address", "Street", "Zip", "City", "NearAddress"]
    return (
        _null_where(street, none), _take([c[0] for c in _CITIES], city, none),
        _take([s or "" for s in states], city, state_null), _null_where(postal, none),
        _take([c[2] for c in _CITIES], city, none), _numbers(lat, none), _numbers(lon, none),
        _take(acc_values, accuracy, none), none,
    )


_PEEKED: dict = {}


def _reserve_peek(ctx: _Context, object_name: str) -> int:
    """The first Id number the object's rows will get: reserved now so parents can point at children
    generated later (Account.Primary_Contact__c)."""
    key = (id(ctx), object_name)
    if key not in ctx.reserved:
        ctx.reserved[object_name] = _reserve(ctx, object_name, ctx.plan[object_name])
    return ctx.reserved[object_name]


def _ids_or_null_global(ctx: _Context, object_name: str, numbers: np.ndarray) -> pa.Array:
    missing = numbers < 0
    ids = make_ids(ctx.obj(object_name).key_prefix, 0, 0)  # typed empty
    if (~missing).any():
        ids = make_ids(ctx.obj(object_name).key_prefix, 0, 0)
    # Build only the needed Ids, in place.
    safe = np.where(missing, 0, numbers)
    out = _make_ids_for(ctx.obj(object_name).key_prefix, safe)
    return _null_where(out, missing)


def _make_ids_for(prefix: str, numbers: np.ndarray) -> pa.Array:
    """Ids for arbitrary (not necessarily consecutive) counter numbers."""
    if len(numbers) == 0:
        return pa.array([], type=pa.string())
    order_free = make_ids(prefix, 0, 1)  # warm path check
    del order_free
    nums = np.asarray(numbers, dtype=np.int64)
    count = len(nums)
    chars = np.empty((count, 18), dtype=np.uint8)
    chars[:, :6] = np.frombuffer((prefix + "5g0").encode("ascii"), dtype=np.uint8)
    for pos in range(14, 5, -1):
        nums, digit = np.divmod(nums, 62)
        chars[:, pos] = _BASE62[digit]
    upper = ((chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))).reshape(count, 3, 5)
    chars[:, 15:] = _SUFFIX[(upper * (1 << np.arange(5))).sum(axis=2)]
    return fixed_width_strings(chars)
