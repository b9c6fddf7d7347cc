"""A deterministic generator of a realistic B2B org for the local Salesforce-compatible server.

`generate_org(store, records, seed=..., now=...)` fills an `OrgStore` with users, accounts, contacts,
opportunities, cases, case comments, tasks, events and subscriptions (the custom object `Subscription__c`,
1-3 per customer account that has any) whose shape matches what a customer-success org
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

Org shapes (`shape=`): "b2b" (the default) is the customer-success mix of `SHARES`; "accounts" is for
benchmarks that need 100k-1M Account-like rows: ~97% of the records are Accounts (every standard and
custom field filled as in "b2b"), owned by a small set of users, and the remaining ~3% are spread over the
other objects in the "b2b" proportions so every relationship still has rows on both sides.

Same (records, seed, now, shape) -> identical data, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sonora_pipeline.localorg.schema import ObjectSpec
from sonora_pipeline.localorg.store import DELETED_LOG, OrgStore

CHUNK_ROWS = 100_000

# Share of the requested record total per object (the rest goes to users and record types).
# `plan_counts` normalises by the sum, so Subscription__c's ~3% is taken from the others proportionally.
SHARES: dict[str, float] = {
    "Account": 0.08, "Contact": 0.25, "Opportunity": 0.10, "Case": 0.08, "CaseComment": 0.07,
    "Task": 0.25, "Event": 0.15, "Subscription__c": 0.0303,
}
SHAPES = ("b2b", "accounts")
ACCOUNTS_SHAPE_SHARE = 0.97       # "accounts" shape: share of the (non-setup) records that are Accounts
# Stable small integers that tag each object's random streams.
_STREAM_TAGS = {name: i for i, name in enumerate(
    ["User", "RecordType", "Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event",
     "Subscription__c"])}

MS = 1
SECOND = 1000 * MS
HOUR = 3600 * SECOND
DAY = 24 * HOUR
HISTORY = 3 * 365 * DAY          # how far back the org's activity goes
RECYCLE_WINDOW = 14 * DAY        # soft deletes are recent: the recycle bin keeps ~15 days
ARCHIVE_AGE_DAYS = 365           # activities older than this are archived, as in a real org

ACCOUNT_DELETE_RATE = 0.01       # accounts deleted (cascading to their children)
LEAF_DELETE_RATE = 0.005         # tasks, events and comments deleted on their own
SUBSCRIPTION_DELETE_RATE = 0.005  # subscriptions deleted on their own (plus those of deleted accounts: ~1%)


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
    ("東京", "東京都", "Japan", "100-00", 35.6762, 139.6503, "+81 3", 2),
    ("Sydney", "NSW", "Australia", "20", -33.8688, 151.2093, "+61 2", 2),
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


def ids_for_numbers(prefix: str, numbers: np.ndarray, pod: str = "5g0") -> pa.Array:
    """The Ids with counter numbers `numbers`: equal to `ids.make_id(prefix, n)` for each n, but
    vectorised (a million Python calls would cost seconds)."""
    nums = np.asarray(numbers, dtype=np.int64).copy()
    count = len(nums)
    chars = np.empty((count, 18), dtype=np.uint8)
    chars[:, :6] = np.frombuffer((prefix + pod).encode("ascii"), dtype=np.uint8)
    for pos in range(14, 5, -1):  # 9 base62 digits, least significant last
        nums, digit = np.divmod(nums, 62)
        chars[:, pos] = _BASE62[digit]
    upper = ((chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))).reshape(count, 3, 5)
    chars[:, 15:] = _SUFFIX[(upper * (1 << np.arange(5))).sum(axis=2)]
    return fixed_width_strings(chars)


def make_ids(prefix: str, start: int, count: int, pod: str = "5g0") -> pa.Array:
    """Ids number `start .. start+count-1` of a key prefix."""
    return ids_for_numbers(prefix, np.arange(start, start + count, dtype=np.int64), pod)


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
    if field_name not in obj.fields and field_name.endswith("__c"):
        return wanted or [""]  # an org without this custom field: the column is dropped at load
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
class _Users:
    ids: pa.Array
    role: np.ndarray  # role per user; index 0 is the integration user (role -1)

    def of_role(self, role: int) -> np.ndarray:
        found = np.flatnonzero(self.role == role)
        return found if len(found) else self.humans()

    def humans(self) -> np.ndarray:
        found = np.flatnonzero(self.role >= 0)
        return found if len(found) else np.zeros(1, dtype=np.int64)


@dataclass
class _Context:
    store: OrgStore
    seed: int
    now_ms: int
    plan: dict[str, int]
    start: dict[str, int] = field(default_factory=dict)    # first reserved Id number per object
    users: _Users | None = None
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

    def ids(self, object_name: str, index: np.ndarray) -> pa.Array:
        """Ids of rows `index` (0-based within the generated rows) of an object; null where index < 0."""
        index = np.asarray(index, dtype=np.int64)
        missing = index < 0
        ids = ids_for_numbers(self.obj(object_name).key_prefix, self.start[object_name] + np.maximum(index, 0))
        return _null_where(ids, missing)

    def id_range(self, object_name: str, lo: int, hi: int) -> pa.Array:
        return make_ids(self.obj(object_name).key_prefix, self.start[object_name] + lo, hi - lo)


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

    @classmethod
    def fixed(cls, created: np.ndarray) -> _Audit:
        """Setup rows (users, record types): created and last touched once by the integration user."""
        n = len(created)
        zeros = np.zeros(n, dtype=np.int64)
        return cls(created=created, modified=created.copy(), stamp=created.copy(), created_by=zeros,
                   modified_by=zeros.copy(), deleted=np.zeros(n, dtype=bool))


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
    """Mark rows deleted at `when` (never before they were last touched): deleting a record moves
    LastModifiedDate and SystemModstamp to the deletion time, as `OrgStore.delete` does."""
    mask = mask & ~audit.deleted
    at = np.maximum(when, audit.stamp)
    audit.deleted = audit.deleted | mask
    audit.modified = np.where(mask, at, audit.modified)
    audit.stamp = np.where(mask, at, audit.stamp)
    audit.modified_by = np.where(mask, 0, audit.modified_by)


def _recent_deletion_times(rng: np.random.Generator, n: int, now_ms: int) -> np.ndarray:
    return now_ms - (rng.random(n) * RECYCLE_WINDOW).astype(np.int64)


def _cascade(audit: _Audit, parent: _Audit, parent_idx: np.ndarray) -> None:
    """Children of a deleted parent go to the recycle bin with it (at the parent's deletion time), so
    no live record ever points at a deleted one."""
    _soft_delete(audit, parent.deleted[parent_idx], parent.stamp[parent_idx])


def _delete_some(rng: np.random.Generator, audit: _Audit, rate: float, now_ms: int) -> None:
    n = len(audit.created)
    _soft_delete(audit, rng.random(n) < rate, _recent_deletion_times(rng, n, now_ms))


# =====================================================================================================
# Emitting rows: chunks of arrow tables into the store.
# =====================================================================================================

Builder = Callable[[np.random.Generator, int, int], dict[str, pa.Array]]


def _emit(ctx: _Context, object_name: str, ids: Callable[[int, int], pa.Array], audit: _Audit,
          build: Builder) -> None:
    """Build and load an object's rows chunk by chunk; add Id, audit fields, IsDeleted, OwnerId, and
    false for every non-nillable boolean the builder left unset (the store expects them non-null)."""
    obj = ctx.obj(object_name)
    assert ctx.users is not None
    user_ids = ctx.users.ids
    n = len(audit.created)
    booleans = [f.name for f in obj.stored_fields() if f.type == "boolean" and not f.nillable]
    for chunk in range(math.ceil(n / CHUNK_ROWS)):
        lo, hi = chunk * CHUNK_ROWS, min(n, (chunk + 1) * CHUNK_ROWS)
        part = slice(lo, hi)
        chunk_ids = ids(lo, hi)
        cols: dict[str, pa.Array] = {"Id": chunk_ids}
        cols.update(build(ctx.rng(object_name, chunk), lo, hi))
        cols["CreatedDate"] = _timestamps(audit.created[part])
        cols["LastModifiedDate"] = _timestamps(audit.modified[part])
        cols["SystemModstamp"] = _timestamps(audit.stamp[part])
        cols["CreatedById"] = _take(user_ids, audit.created_by[part])
        cols["LastModifiedById"] = _take(user_ids, audit.modified_by[part])
        if "IsDeleted" in obj.fields:
            cols["IsDeleted"] = _bools(audit.deleted[part])
        if audit.owner is not None and "OwnerId" in obj.fields and "OwnerId" not in cols:
            cols["OwnerId"] = _take(user_ids, audit.owner[part])
        for name in booleans:
            if name not in cols:
                cols[name] = _bools(np.zeros(hi - lo, dtype=bool))
        for name in [c for c in cols if c not in obj.fields and c.endswith("__c")]:
            del cols[name]  # an org without this custom field (standard fields only)
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


def _write_deleted_log(ctx: _Context) -> None:
    """Recycle-bin entries for every soft-deleted row (what getDeleted and queryAll rely on)."""
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

_RESERVE_ORDER = ["User", "Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event",
                  "Subscription__c"]


def plan_counts(records: int, shape: str = "b2b") -> dict[str, int]:
    """Rows per object for an approximate total of `records`.

    "b2b": users grow like sqrt(records), the rest follows `SHARES`. "accounts": a small set of users
    (5-25), `ACCOUNTS_SHAPE_SHARE` of the rest in Account and the remainder over the other objects in the
    `SHARES` proportions.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown org shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if shape == "accounts":
        n_users = int(np.clip(round(0.02 * math.sqrt(max(records, 1))), 5, 25))
        rest = max(records - n_users - 3, 0)
        plan = {"User": n_users, "RecordType": 3, "Account": max(int(round(ACCOUNTS_SHAPE_SHARE * rest)), 1)}
        others = {name: share for name, share in SHARES.items() if name != "Account"}
        scale = max(rest - plan["Account"], 0) / sum(others.values())
        for name, share in others.items():
            plan[name] = int(round(share * scale))
        return {name: plan[name] for name in ("User", "RecordType", *SHARES)}
    n_users = int(np.clip(round(0.3 * math.sqrt(max(records, 1))), 5, 400))
    rest = max(records - n_users - 3, 0)
    scale = rest / sum(SHARES.values())
    plan = {"User": n_users, "RecordType": 3}
    for name, share in SHARES.items():
        plan[name] = int(round(share * scale))
    plan["Account"] = max(plan["Account"], 1)
    return plan


def _to_ms(now: datetime) -> int:
    """Milliseconds since the epoch of a (naive = UTC, or aware) datetime, truncated to the ms."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    delta = now - datetime(1970, 1, 1)
    return delta.days * DAY + delta.seconds * SECOND + delta.microseconds // 1000


# =====================================================================================================
# Users and record types.
# =====================================================================================================

def _generate_users(ctx: _Context) -> _Users:
    """Owners: the integration (admin, run-as) user first, then sales, CSM and support staff."""
    n = ctx.plan["User"]
    rng = ctx.rng("User")
    role = np.concatenate([[-1], _weighted(rng, n - 1, [r[2] for r in _USER_ROLES])]).astype(np.int64)
    for r in range(min(len(_USER_ROLES), n - 1)):  # every role exists, so owners can be drawn from it
        role[1 + r] = r
    ids = ctx.id_range("User", 0, n)
    ctx.users = _Users(ids=ids, role=role)

    created = ctx.now_ms - HISTORY - (rng.random(n) * 365 * DAY).astype(np.int64)
    created[0] = ctx.now_ms - HISTORY - 400 * DAY
    integration = {"FirstName": "Integration", "LastName": "User", "Name": "Integration User",
                   "Username": "integration@sonora.localorg", "Email": "integration@sonora.example.com",
                   "Title": "System Administrator", "Department": "IT", "IsActive": True}

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k = hi - lo
        first = crng.integers(0, len(_FIRST_NAMES), k)
        last = crng.integers(0, len(_LAST_NAMES), k)
        first_disp = _take([f[0] for f in _FIRST_NAMES], first)
        last_disp = _take([f[0] for f in _LAST_NAMES], last)
        login = _join(_take([f[1] for f in _FIRST_NAMES], first), ".",
                      _take([f[1] for f in _LAST_NAMES], last), pc.cast(pa.array(np.arange(lo, hi)), pa.string()))
        roles = np.maximum(role[lo:hi], 0)
        cols = {
            "FirstName": first_disp, "LastName": last_disp, "Name": _join(first_disp, " ", last_disp),
            "Username": _join(login, "@sonora.localorg"), "Email": _join(login, "@sonora.example.com"),
            "Title": _take([r[0] for r in _USER_ROLES], roles),
            "Department": _take([r[1] for r in _USER_ROLES], roles),
            "IsActive": _bools(crng.random(k) >= 0.05),
            "UserType": _take(["Standard"], np.zeros(k, dtype=np.int64)),
        }
        if lo == 0:
            for name, value in integration.items():
                values = cols[name].to_pylist()
                values[0] = value
                cols[name] = pa.array(values, type=cols[name].type)
        return cols

    _emit(ctx, "User", lambda lo, hi: ids[lo:hi], _Audit.fixed(created), build)
    return ctx.users


def _generate_record_types(ctx: _Context) -> None:
    """The Account record types the catalog describes, with the describe's fixed Ids."""
    rts = ctx.obj("Account").record_types
    created = np.full(len(rts), ctx.now_ms - HISTORY - 390 * DAY, dtype=np.int64)
    ids = _strings([rt["recordTypeId"] for rt in rts])

    def build(_rng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        return {
            "Name": _strings([rt["name"] for rt in rts[lo:hi]]),
            "DeveloperName": _strings([rt["developerName"] for rt in rts[lo:hi]]),
            "SobjectType": _strings(["Account"] * (hi - lo)),
            "IsActive": _bools(np.ones(hi - lo, dtype=bool)),
        }

    _emit(ctx, "RecordType", lambda lo, hi: ids[lo:hi], _Audit.fixed(created), build)


# =====================================================================================================
# Accounts.
# =====================================================================================================

KIND_CUSTOMER, KIND_PROSPECT, KIND_PARTNER = 0, 1, 2
_KIND_DEVNAMES = ["Customer", "Prospect", "Partner"]
_KIND_WEIGHTS = [0.55, 0.33, 0.12]
_KIND_TYPES = {  # which Account.Type values fit each record type
    KIND_CUSTOMER: ["Customer - Direct", "Customer - Direct", "Customer - Channel"],
    KIND_PROSPECT: ["Prospect", "Prospect", "Prospect", "Other"],
    KIND_PARTNER: ["Channel Partner / Reseller", "Installation Partner", "Technology Partner"],
}
# Relative number of children per account, by kind, scaled by log(employees).
_CHILD_WEIGHTS = {"Contact": (1.2, 0.6, 0.8), "Opportunity": (1.4, 1.0, 0.4), "Case": (2.0, 0.05, 0.3)}


@dataclass
class _Accounts:
    ids: pa.Array
    names: pa.Array
    domains: pa.Array
    kind: np.ndarray
    owner: np.ndarray
    city: np.ndarray
    audit: _Audit
    # Children are stored contiguously per account: per child object, counts and first child index.
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    starts: dict[str, np.ndarray] = field(default_factory=dict)
    arr: np.ndarray | None = None   # ARR__c (NaN where none: non-customers)
    csm: np.ndarray | None = None   # Customer_Success_Manager__c user index, -1 where none

    def children(self, object_name: str) -> np.ndarray:
        """The account index of each child row (children are grouped by account)."""
        return np.repeat(np.arange(len(self.kind)), self.counts[object_name])

    def pick_child(self, rng: np.random.Generator, object_name: str, account: np.ndarray) -> np.ndarray:
        return _pick_in_block(rng, account, self.starts[object_name], self.counts[object_name])


def arr_band(arr: np.ndarray) -> pa.Array:
    """ARR_Band__c exactly as the formula field computes it, vectorised (NaN = no ARR = null)."""
    band = np.where(arr >= 250_000, 0, np.where(arr >= 50_000, 1, 2))
    return _take(["Enterprise", "Mid-Market", "SMB"], band, np.isnan(arr))


def _tier(arr: np.ndarray) -> np.ndarray:
    return np.select([arr >= 500_000, arr >= 100_000, arr >= 25_000], [0, 1, 2], 3)


def _company_names(rng: np.random.Generator, n: int) -> tuple[pa.Array, pa.Array]:
    """("Bluestone Analytics, Inc.", "bluestone.com") pairs from combinable word lists."""
    root = rng.integers(0, len(_NAME_ROOTS), n)
    stem = rng.integers(0, len(_NAME_STEMS), n)
    brand = _join(_take([r[0] for r in _NAME_ROOTS], root), _take(_NAME_STEMS, stem))
    names = _join(brand, " ", _take(_NAME_SECTORS, rng.integers(0, len(_NAME_SECTORS), n)))
    suffix = _take(_LEGAL_SUFFIXES, _weighted(rng, n, _LEGAL_WEIGHTS))
    spaced = pc.if_else(pc.starts_with(suffix, ","), suffix, _join(" ", suffix))
    names = pc.utf8_rtrim_whitespace(_join(names, spaced))
    domains = _join(_take([r[1] for r in _NAME_ROOTS], root), _take(_NAME_STEMS, stem),
                    _take(_TLDS, rng.integers(0, len(_TLDS), n)))
    return names, domains


def _contract_days(rng: np.random.Generator, n: int, today: int) -> tuple[np.ndarray, np.ndarray]:
    """Contract (start, end) days: ~15% expired, ~45% ending within 180 days, the rest later."""
    bucket = _weighted(rng, n, [0.15, 0.45, 0.40])
    end = today + np.choose(bucket, [-rng.integers(1, 366, n), rng.integers(0, 181, n),
                                     rng.integers(181, 3 * 365, n)])
    term = np.array([365, 730, 1095])[_weighted(rng, n, [6, 3, 1])]
    return end - term, end


def _generate_accounts(ctx: _Context) -> _Accounts:
    """Accounts in creation order, so ParentId (an earlier account) is also an older account."""
    obj = ctx.obj("Account")
    n = ctx.plan["Account"]
    rng = ctx.rng("Account")
    users = ctx.users
    assert users is not None
    ids = ctx.id_range("Account", 0, n)

    kind = _weighted(rng, n, _KIND_WEIGHTS)
    created = np.sort(ctx.now_ms - (HISTORY * rng.random(n) ** 1.6).astype(np.int64))
    employees = np.maximum(1, np.round(rng.lognormal(math.log(180), 1.4, n))).astype(np.int64)
    aes = users.of_role(ROLE_AE)
    owner = aes[rng.integers(0, len(aes), n)]
    city = _weighted(rng, n, _CITY_WEIGHTS)
    names, domains = _company_names(rng, n)
    parent = np.where((rng.random(n) < 0.10) & (np.arange(n) > 0),
                      np.floor(rng.random(n) * np.arange(n)).astype(np.int64), -1)

    audit = _make_audit(rng, created, ctx.now_ms, users, owner)
    is_parent = np.zeros(n, dtype=bool)
    is_parent[parent[parent >= 0]] = True
    # Deleted accounts are never parents, so no live account points at a recycled one.
    _soft_delete(audit, (rng.random(n) < ACCOUNT_DELETE_RATE) & ~is_parent,
                 _recent_deletion_times(rng, n, ctx.now_ms))

    accounts = _Accounts(ids=ids, names=names, domains=domains, kind=kind, owner=owner, city=city,
                         audit=audit)
    size = np.log1p(employees)
    for child, by_kind in _CHILD_WEIGHTS.items():
        weights = size * np.array(by_kind)[kind]
        counts = rng.multinomial(ctx.plan[child], weights / weights.sum())
        accounts.counts[child] = counts
        accounts.starts[child] = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    customer = kind == KIND_CUSTOMER
    arr = np.round(rng.lognormal(math.log(60_000), 1.25, n), 2)
    arr = np.where(rng.random(n) < 0.004, np.round(rng.uniform(1e7, 8e7, n), 2), arr)  # a few whales
    arr = np.where(customer, arr, np.nan)
    contract_start, contract_end = _contract_days(rng, n, ctx.now_ms // DAY)
    csms = users.of_role(ROLE_CSM)
    csm = np.where(customer & (rng.random(n) < 0.85), csms[rng.integers(0, len(csms), n)], -1)
    accounts.arr, accounts.csm = arr, csm
    revenue = np.round(employees * rng.lognormal(math.log(150_000), 0.6, n), -3)
    rt_ids = {rt["developerName"]: rt["recordTypeId"] for rt in obj.record_types}
    type_values = obj.fields["Type"].picklist_values
    type_options = {k: np.array([type_values.index(v) for v in vs if v in type_values] or [0])
                    for k, vs in _KIND_TYPES.items()}
    industries = _picklist(obj, "Industry")
    sources = _picklist(obj, "AccountSource")
    primary = np.where(accounts.counts["Contact"] > 0, accounts.starts["Contact"], -1)

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        kinds = kind[part]
        pick = crng.integers(0, 12, k)
        type_idx = np.zeros(k, dtype=np.int64)
        for kd, options in type_options.items():
            m = kinds == kd
            type_idx[m] = options[pick[m] % len(options)]
        c_arr = arr[part]
        no_arr = np.isnan(c_arr)
        return {
            "Name": names[lo:hi],
            "Type": _take(type_values, type_idx),
            "RecordTypeId": _take([rt_ids[d] for d in _KIND_DEVNAMES], kinds),
            "ParentId": _ids_or_null(ids, parent[part]),
            "ns__LinkedAccount__c": ids[lo:hi],  # required by its (managed) describe: links to itself
            "Primary_Contact__c": ctx.ids("Contact", primary[part]),
            "Industry": _take(industries, crng.integers(0, len(industries), k), crng.random(k) < 0.05),
            "AnnualRevenue": _numbers(revenue[part], crng.random(k) < 0.2),
            "NumberOfEmployees": _numbers(employees[part], crng.random(k) < 0.1),
            **_address_columns("Billing", crng, city[part]),
            "Phone": _null_where(_phones(crng, city[part]), crng.random(k) < 0.1),
            "Website": _null_where(_join("https://www.", domains[lo:hi]), crng.random(k) < 0.1),
            "AccountSource": _take(sources, crng.integers(0, len(sources), k), crng.random(k) < 0.3),
            "Rating": _take(_picklist(obj, "Rating"), crng.integers(0, 3, k), crng.random(k) < 0.5),
            "ARR__c": _numbers(np.where(no_arr, 0.0, c_arr), no_arr),
            "ARR_Band__c": arr_band(c_arr),
            "Contract_Start_Date__c": _dates(contract_start[part], are_days=True, null=no_arr),
            "Contract_End_Date__c": _dates(contract_end[part], are_days=True, null=no_arr),
            "Tier__c": _take(["Platinum", "Gold", "Silver", "Bronze"], _tier(np.nan_to_num(c_arr)), no_arr),
            "Customer_Success_Manager__c": _ids_or_null(users.ids, csm[part]),
        }

    _emit(ctx, "Account", lambda lo, hi: ids[lo:hi], audit, build)
    return accounts


def _phones(rng: np.random.Generator, city: np.ndarray) -> pa.Array:
    k = len(city)
    return _join(_take([c[6] for c in _CITIES], city), " ", _digits(rng, k, 3), "-", _digits(rng, k, 4))


def _address_columns(prefix: str, rng: np.random.Generator, city: np.ndarray,
                     none: np.ndarray | None = None) -> dict[str, pa.Array]:
    """Address components around a city (Billing*, Mailing* ...). ~10% of rows have none; some streets
    span two lines (CSV exports must quote embedded newlines)."""
    k = len(city)
    none = (rng.random(k) < 0.10) if none is None else none
    street = _join(pc.cast(pa.array(rng.integers(1, 9999, k)), pa.string()), " ",
                   _take(_STREET_NAMES, rng.integers(0, len(_STREET_NAMES), k)), " ",
                   _take(_STREET_KINDS, rng.integers(0, len(_STREET_KINDS), k)))
    suite = _join("\nSuite ", pc.cast(pa.array(rng.integers(100, 2000, k)), pa.string()))
    street = pc.if_else(pa.array(rng.random(k) < 0.15), _join(street, suite), street)
    digits = _digits(rng, k, 3)
    tails = [pc.utf8_slice_codeunits(digits, 0, d) for d in range(4)]
    postal = _join(_take([c[3] for c in _CITIES], city),
                   pc.choose(pa.array(np.array([c[7] for c in _CITIES])[city]), *tails))
    lat = np.round(np.array([c[4] for c in _CITIES])[city] + rng.normal(0, 0.05, k), 6)
    lon = np.round(np.array([c[5] for c in _CITIES])[city] + rng.normal(0, 0.05, k), 6)
    no_state = np.array([c[1] is None for c in _CITIES])[city] | none
    accuracy = _weighted(rng, k, [70, 10, 5, 10, 5])
    return {
        f"{prefix}Street": _null_where(street, none),
        f"{prefix}City": _take([c[0] for c in _CITIES], city, none),
        f"{prefix}State": _take([c[1] or "" for c in _CITIES], city, no_state),
        f"{prefix}PostalCode": _null_where(postal, none),
        f"{prefix}Country": _take([c[2] for c in _CITIES], city, none),
        f"{prefix}Latitude": _numbers(lat, none),
        f"{prefix}Longitude": _numbers(lon, none),
        f"{prefix}GeocodeAccuracy": _take(["Address", "Street", "Zip", "City", "NearAddress"], accuracy, none),
    }


# =====================================================================================================
# Contacts.
# =====================================================================================================

@dataclass
class _Contacts:
    account: np.ndarray
    created: np.ndarray


def _generate_contacts(ctx: _Context, accounts: _Accounts) -> _Contacts:
    """Contacts grouped by account: the first of each account is its primary contact, and ~40% report
    to an earlier contact of the same account."""
    obj = ctx.obj("Contact")
    rng = ctx.rng("Contact")
    users = ctx.users
    assert users is not None
    acct = accounts.children("Contact")
    n = len(acct)
    starts = accounts.starts["Contact"][acct]
    position = np.arange(n) - starts
    reports_to = np.where((position > 0) & (rng.random(n) < 0.4),
                          starts + np.floor(rng.random(n) * position).astype(np.int64), -1)
    created = _spread_after(rng, accounts.audit.created[acct], ctx.now_ms)
    humans = users.humans()
    owner = np.where(rng.random(n) < 0.8, accounts.owner[acct], humans[rng.integers(0, len(humans), n)])
    surveyed = rng.random(n) < 0.45
    survey_ms = _spread_after(rng, created, ctx.now_ms, power=1.0)
    nps = _weighted(rng, n, [2, 1, 1, 2, 2, 4, 5, 9, 14, 14, 10]).astype(np.float64)
    audit = _make_audit(rng, created, ctx.now_ms, users, owner, floor=np.where(surveyed, survey_ms, created))
    _cascade(audit, accounts.audit, acct)
    personas = _picklist(obj, "Persona__c")
    salutations = _picklist(obj, "Salutation")
    lead_sources = _picklist(obj, "LeadSource")

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        a = acct[part]
        first = crng.integers(0, len(_FIRST_NAMES), k)
        last = crng.integers(0, len(_LAST_NAMES), k)
        first_disp = _take([f[0] for f in _FIRST_NAMES], first)
        last_disp = _take([f[0] for f in _LAST_NAMES], last)
        email = _join(_take([f[1] for f in _FIRST_NAMES], first), ".", _take([f[1] for f in _LAST_NAMES], last),
                      "@", pc.take(accounts.domains, pa.array(a)))
        title = _weighted(crng, k, _TITLE_WEIGHTS)
        persona = np.array([t[2] for t in _TITLES])[title]
        same_city = crng.random(k) < 0.8
        city = np.where(same_city, accounts.city[a], _weighted(crng, k, _CITY_WEIGHTS))
        return {
            "AccountId": pc.take(accounts.ids, pa.array(a)),
            "FirstName": first_disp, "LastName": last_disp, "Name": _join(first_disp, " ", last_disp),
            "Salutation": _take(salutations, crng.integers(0, len(salutations), k), crng.random(k) < 0.6),
            "Email": _null_where(email, crng.random(k) < 0.05),
            "Title": _take([t[0] for t in _TITLES], title),
            "Department": _take([t[1] for t in _TITLES], title),
            "Phone": _null_where(_phones(crng, city), crng.random(k) < 0.15),
            "MobilePhone": _null_where(_phones(crng, city), crng.random(k) < 0.6),
            **_address_columns("Mailing", crng, city, none=crng.random(k) < 0.3),
            "ReportsToId": ctx.ids("Contact", reports_to[part]),
            "LeadSource": _take(lead_sources, crng.integers(0, len(lead_sources), k), crng.random(k) < 0.4),
            "Persona__c": _take(personas, np.minimum(persona, len(personas) - 1), crng.random(k) < 0.1),
            "NPS_Score__c": _numbers(nps[part], ~surveyed[part]),
            "Last_Survey_Date__c": _dates(survey_ms[part], null=~surveyed[part]),
            "Is_Primary_Contact__c": _bools(position[part] == 0),
        }

    _emit(ctx, "Contact", lambda lo, hi: ctx.id_range("Contact", lo, hi), audit, build)
    return _Contacts(account=acct, created=created)


# =====================================================================================================
# Opportunities.
# =====================================================================================================

def _fiscal(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    quarter = (d.astype("datetime64[M]").astype(np.int64) % 12) // 3 + 1
    return year, quarter


def _generate_opportunities(ctx: _Context, accounts: _Accounts) -> np.ndarray:
    """Deals per account: older ones mostly closed (won or lost), recent ones in open stages; stage
    drives Probability, ForecastCategory, IsClosed and IsWon exactly as the org derives them."""
    obj = ctx.obj("Opportunity")
    rng = ctx.rng("Opportunity")
    users = ctx.users
    assert users is not None
    acct = accounts.children("Opportunity")
    n = len(acct)
    now = ctx.now_ms
    created = _spread_after(rng, accounts.audit.created[acct], now)
    stages = obj.fields["StageName"].picklist_values
    open_stages = [s for s in stages if s not in ("Closed Won", "Closed Lost") and s in _STAGE_RULES]
    closed = rng.random(n) < np.where(now - created > 120 * DAY, 0.85, 0.3)
    won = rng.random(n) < 0.55
    open_idx = np.array([stages.index(s) for s in open_stages])
    open_pick = open_idx[_weighted(rng, n, [5, 5, 4, 3, 3, 2, 3, 2][:len(open_stages)])]
    stage = np.where(closed, np.where(won, stages.index("Closed Won"), stages.index("Closed Lost")), open_pick)
    closed_ms = np.minimum(now, created + (rng.lognormal(math.log(45), 0.7, n) * DAY).astype(np.int64))
    open_close_day = now // DAY + np.where(rng.random(n) < 0.1, -rng.integers(1, 31, n), rng.integers(5, 181, n))
    close_day = np.where(closed, closed_ms // DAY, open_close_day)
    amount = np.round(rng.lognormal(math.log(40_000), 1.0, n), -2)
    no_amount = rng.random(n) < 0.03
    probability = np.array([_STAGE_RULES.get(s, (0, "Omitted", "Omitted"))[0] for s in stages], dtype=np.float64)
    owner = np.where(rng.random(n) < 0.85, accounts.owner[acct], users.of_role(ROLE_AE)[0])
    audit = _make_audit(rng, created, now, users, owner, floor=np.where(closed, closed_ms, created))
    _cascade(audit, accounts.audit, acct)
    year, quarter = _fiscal(close_day)
    types = obj.fields["Type"].picklist_values
    new_customer = types.index("New Customer") if "New Customer" in types else 0
    existing = [i for i, t in enumerate(types) if t.startswith("Existing")] or [new_customer]
    lead_sources = _picklist(obj, "LeadSource")

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        a, s = acct[part], stage[part]
        type_idx = np.where((accounts.kind[a] == KIND_CUSTOMER) & (crng.random(k) < 0.8),
                            np.array(existing)[crng.integers(0, len(existing), k)], new_customer)
        prob = probability[s]
        amt = amount[part]
        missing = no_amount[part]
        label = _take(_OPP_LABELS, crng.integers(0, len(_OPP_LABELS), k))
        contact = accounts.pick_child(crng, "Contact", a)
        return {
            "AccountId": pc.take(accounts.ids, pa.array(a)),
            "Name": pc.utf8_slice_codeunits(_join(pc.take(accounts.names, pa.array(a)), " - ", label), 0, 120),
            "StageName": _take(stages, s),
            "Amount": _numbers(amt, missing),
            "Probability": _numbers(prob),
            "ExpectedRevenue": _numbers(np.round(amt * prob / 100, 2), missing),
            "CloseDate": _dates(close_day[part], are_days=True),
            "Type": _take(types, type_idx, crng.random(k) < 0.05),
            "LeadSource": _take(lead_sources, crng.integers(0, len(lead_sources), k), crng.random(k) < 0.3),
            "IsClosed": _bools(closed[part]),
            "IsWon": _bools(closed[part] & won[part]),
            "ForecastCategory": _take([_STAGE_RULES.get(x, (0, "Omitted", "Omitted"))[1] for x in stages], s),
            "ForecastCategoryName": _take([_STAGE_RULES.get(x, (0, "Omitted", "Omitted"))[2] for x in stages], s),
            "LastStageChangeDate": _timestamps(closed_ms[part], null=~closed[part]),
            "FiscalYear": _numbers(year[part]),
            "FiscalQuarter": _numbers(quarter[part]),
            "Fiscal": _join(pc.cast(pa.array(year[part]), pa.string()), " ",
                            pc.cast(pa.array(quarter[part]), pa.string())),
            "ContactId": ctx.ids("Contact", np.where(crng.random(k) < 0.4, contact, -1)),
        }

    _emit(ctx, "Opportunity", lambda lo, hi: ctx.id_range("Opportunity", lo, hi), audit, build)
    return created


# =====================================================================================================
# Cases and case comments.
# =====================================================================================================

@dataclass
class _Cases:
    account: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    closed_ms: np.ndarray
    escalated: np.ndarray
    audit: _Audit


def _generate_cases(ctx: _Context, accounts: _Accounts) -> _Cases:
    """Support cases, mostly on customer accounts; old ones are closed, with ClosedDate after
    CreatedDate and LastModifiedDate no earlier than the close."""
    obj = ctx.obj("Case")
    rng = ctx.rng("Case")
    users = ctx.users
    assert users is not None
    acct = accounts.children("Case")
    n = len(acct)
    now = ctx.now_ms
    created = _spread_after(rng, accounts.audit.created[acct], now)
    statuses = obj.fields["Status"].picklist_values
    closed_value = "Closed" if "Closed" in statuses else statuses[-1]
    open_values = [s for s in statuses if s != closed_value]
    open_weights = {"New": 35, "Working": 50, "Escalated": 15}
    closed = rng.random(n) < np.where(now - created > 30 * DAY, 0.92, 0.35)
    open_pick = np.array([statuses.index(s) for s in open_values])[
        _weighted(rng, n, [open_weights.get(s, 10) for s in open_values])]
    status = np.where(closed, statuses.index(closed_value), open_pick)
    escalated = status == (statuses.index("Escalated") if "Escalated" in statuses else -1)
    duration = np.maximum(SECOND, (rng.lognormal(math.log(30), 1.2, n) * HOUR).astype(np.int64))
    closed_ms = created + np.maximum(np.minimum(duration, now - created), 1)
    support = users.of_role(ROLE_SUPPORT)
    owner = support[rng.integers(0, len(support), n)]
    audit = _make_audit(rng, created, now, users, owner, floor=np.where(closed, closed_ms, created))
    _cascade(audit, accounts.audit, acct)
    start = ctx.start["Case"]
    priorities, origins = _picklist(obj, "Priority"), _picklist(obj, "Origin")
    priority_weights = [{"High": 2, "Medium": 5, "Low": 3}.get(p, 1) for p in priorities]
    types, reasons = _picklist(obj, "Type"), _picklist(obj, "Reason")

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        a = acct[part]
        contact = accounts.pick_child(crng, "Contact", a)
        subject = _take(_CASE_SUBJECTS, crng.integers(0, len(_CASE_SUBJECTS), k))
        return {
            "CaseNumber": pc.utf8_lpad(pc.cast(pa.array(np.arange(start + lo, start + hi)), pa.string()),
                                       width=8, padding="0"),
            "AccountId": pc.take(accounts.ids, pa.array(a)),
            "ContactId": ctx.ids("Contact", np.where(crng.random(k) < 0.9, contact, -1)),
            "Subject": subject,
            "Description": _null_where(_join("Customer wrote: ", subject, ". Please advise."),
                                       crng.random(k) < 0.5),
            "Status": _take(statuses, status[part]),
            "Priority": _take(priorities, _weighted(crng, k, priority_weights)),
            "Origin": _take(origins, crng.integers(0, len(origins), k)),
            "Type": _take(types, crng.integers(0, len(types), k), crng.random(k) < 0.2),
            "Reason": _take(reasons, crng.integers(0, len(reasons), k), crng.random(k) < 0.3),
            "IsClosed": _bools(closed[part]),
            "IsEscalated": _bools(escalated[part]),
            "ClosedDate": _timestamps(closed_ms[part], null=~closed[part]),
        }

    _emit(ctx, "Case", lambda lo, hi: ctx.id_range("Case", lo, hi), audit, build)
    return _Cases(account=acct, created=created, closed=closed, closed_ms=closed_ms, escalated=escalated,
                  audit=audit)


def _generate_case_comments(ctx: _Context, cases: _Cases) -> None:
    """Comments on cases (escalated ones get more), written while the case was open. Bodies carry
    commas, quotes, newlines and non-ASCII text on purpose."""
    rng = ctx.rng("CaseComment")
    users = ctx.users
    assert users is not None
    n_cases = len(cases.created)
    n = ctx.plan["CaseComment"] if n_cases else 0
    if n_cases:
        weights = np.where(cases.escalated, 3.0, np.where(cases.closed, 1.0, 1.5))
        counts = rng.multinomial(n, weights / weights.sum())
        parent = np.repeat(np.arange(n_cases), counts)
    else:
        parent = np.zeros(0, dtype=np.int64)
    end = np.where(cases.closed, cases.closed_ms, ctx.now_ms)[parent]
    created = cases.created[parent] + ((end - cases.created[parent]) * rng.random(n)).astype(np.int64)
    support = users.of_role(ROLE_SUPPORT)
    audit = _make_audit(rng, created, ctx.now_ms, users, support[rng.integers(0, len(support), n)])
    audit.owner = None  # CaseComment has no owner
    _cascade(audit, cases.audit, parent)
    _delete_some(rng, audit, LEAF_DELETE_RATE, ctx.now_ms)

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k = hi - lo
        body = _take(_COMMENT_BODIES, crng.integers(0, len(_COMMENT_BODIES), k))
        more = _take(_COMMENT_BODIES, crng.integers(0, len(_COMMENT_BODIES), k))
        body = pc.if_else(pa.array(crng.random(k) < 0.2), _join(body, "\n", more), body)
        return {
            "ParentId": ctx.ids("Case", parent[lo:hi]),
            "CommentBody": body,
            "IsPublished": _bools(crng.random(k) < 0.7),
        }

    _emit(ctx, "CaseComment", lambda lo, hi: ctx.id_range("CaseComment", lo, hi), audit, build)


# =====================================================================================================
# Activities: tasks and events.
# =====================================================================================================

@dataclass
class _Links:
    """Who/what an activity is about: its account, maybe a contact, and the account/opportunity/case."""

    account: np.ndarray
    who: np.ndarray          # contact index or -1
    what_kind: np.ndarray    # 0 account, 1 opportunity, 2 case
    what: np.ndarray         # index within that object
    created: np.ndarray

    def columns(self, ctx: _Context, accounts: _Accounts, lo: int, hi: int) -> dict[str, pa.Array]:
        part = slice(lo, hi)
        kind, what = self.what_kind[part], self.what[part]
        account_ids = pc.take(accounts.ids, pa.array(self.account[part]))
        opp_ids = ctx.ids("Opportunity", np.where(kind == 1, what, -1))
        case_ids = ctx.ids("Case", np.where(kind == 2, what, -1))
        return {
            "AccountId": account_ids,
            "WhoId": ctx.ids("Contact", self.who[part]),
            "WhatId": pc.choose(pa.array(kind), account_ids, opp_ids, case_ids),
        }


def _activity_links(rng: np.random.Generator, n: int, now_ms: int, accounts: _Accounts,
                    contacts: _Contacts, opp_created: np.ndarray, cases: _Cases) -> _Links:
    """Busier accounts (more contacts) get more activities; created after everything they point at."""
    weights = accounts.counts["Contact"] + 1.0
    account = rng.choice(len(weights), size=n, p=weights / weights.sum())
    who = accounts.pick_child(rng, "Contact", account)
    who = np.where(rng.random(n) < 0.85, who, -1)
    roll = rng.random(n)
    opp = accounts.pick_child(rng, "Opportunity", account)
    case = accounts.pick_child(rng, "Case", account)
    what_kind = np.where((roll >= 0.5) & (roll < 0.8) & (opp >= 0), 1,
                         np.where((roll >= 0.8) & (case >= 0), 2, 0))
    what = np.choose(what_kind, [account, opp, case])
    earliest = accounts.audit.created[account]
    earliest = np.maximum(earliest, _created_at(contacts.created, who))
    earliest = np.maximum(earliest, _created_at(opp_created, np.where(what_kind == 1, opp, -1)))
    earliest = np.maximum(earliest, _created_at(cases.created, np.where(what_kind == 2, case, -1)))
    return _Links(account=account, who=who, what_kind=what_kind, what=what,
                  created=_spread_after(rng, earliest, now_ms))


def _created_at(created: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """created[idx], 0 (the epoch) where idx < 0: a lower bound that never binds."""
    if len(created) == 0:
        return np.zeros(len(idx), dtype=np.int64)
    return np.where(idx >= 0, created[np.maximum(idx, 0)], 0)


def _activity_owner(rng: np.random.Generator, users: _Users, accounts: _Accounts, account: np.ndarray) -> np.ndarray:
    csms = users.of_role(ROLE_CSM)
    return np.where(rng.random(len(account)) < 0.5, accounts.owner[account],
                    csms[rng.integers(0, len(csms), len(account))])


def _generate_tasks(ctx: _Context, accounts: _Accounts, contacts: _Contacts, opp_created: np.ndarray,
                    cases: _Cases) -> None:
    """To-dos and logged calls/emails. Past-due ones are mostly completed; completed ones carry
    CompletedDateTime; tasks due over a year ago are archived."""
    obj = ctx.obj("Task")
    rng = ctx.rng("Task")
    users = ctx.users
    assert users is not None
    now = ctx.now_ms
    links = _activity_links(rng, ctx.plan["Task"], now, accounts, contacts, opp_created, cases)
    n = len(links.account)
    created = links.created
    due_day = created // DAY + rng.integers(0, 15, n)
    done = rng.random(n) < np.where(due_day < now // DAY - 7, 0.9, 0.35)
    completed_ms = created + ((np.minimum(now, (due_day + 1) * DAY) - created).clip(0) * rng.random(n)).astype(np.int64)
    owner = _activity_owner(rng, users, accounts, links.account)
    audit = _make_audit(rng, created, now, users, owner, floor=np.where(done, completed_ms, created))
    _cascade(audit, accounts.audit, links.account)
    _delete_some(rng, audit, LEAF_DELETE_RATE, now)
    statuses = obj.fields["Status"].picklist_values
    done_status = statuses.index("Completed")
    open_status = np.array([i for i, s in enumerate(statuses) if s != "Completed"])
    status = np.where(done, done_status, open_status[_weighted(rng, n, [5, 3, 1, 1][:len(open_status)])])
    priorities = obj.fields["Priority"].picklist_values
    priority = _weighted(rng, n, [{"High": 15, "Normal": 70, "Low": 15}.get(p, 5) for p in priorities])
    high = np.array([p == "High" for p in priorities])[priority]
    subtypes = _picklist(obj, "TaskSubtype", ["Task", "Email", "Call"])
    subtype = _weighted(rng, n, [35, 35, 30][:len(subtypes)])
    is_call = np.array([s == "Call" for s in subtypes])[subtype]
    archived = due_day < now // DAY - ARCHIVE_AGE_DAYS

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        subject = _take(_TASK_SUBJECTS, crng.integers(0, len(_TASK_SUBJECTS), k))
        subject = pc.if_else(pa.array(is_call[part]), pa.scalar("Call"), subject)
        return {
            **links.columns(ctx, accounts, lo, hi),
            "Subject": subject,
            "ActivityDate": _dates(due_day[part], are_days=True),
            "Status": _take(statuses, status[part]),
            "Priority": _take(priorities, priority[part]),
            "IsHighPriority": _bools(high[part]),
            "IsClosed": _bools(done[part]),
            "CompletedDateTime": _timestamps(completed_ms[part], null=~done[part]),
            "TaskSubtype": _take(subtypes, subtype[part]),
            "CallDurationInSeconds": _numbers(crng.integers(30, 3600, k), ~(is_call[part] & done[part])),
            "Description": _null_where(_join("Notes: ", subject), crng.random(k) < 0.6),
            "IsArchived": _bools(archived[part]),
        }

    _emit(ctx, "Task", lambda lo, hi: ctx.id_range("Task", lo, hi), audit, build)


def _generate_events(ctx: _Context, accounts: _Accounts, contacts: _Contacts, opp_created: np.ndarray,
                     cases: _Cases) -> None:
    """Meetings scheduled up to three weeks after they were booked (some still in the future); a few
    all-day events; events that started over a year ago are archived."""
    rng = ctx.rng("Event")
    users = ctx.users
    assert users is not None
    now = ctx.now_ms
    links = _activity_links(rng, ctx.plan["Event"], now, accounts, contacts, opp_created, cases)
    n = len(links.account)
    created = links.created
    half_hour = 30 * 60 * SECOND
    start = ((created + (rng.random(n) * 21 * DAY).astype(np.int64)) // half_hour + 1) * half_hour
    all_day = rng.random(n) < 0.03
    start = np.where(all_day, start // DAY * DAY, start)
    minutes = np.where(all_day, 1440, np.array([15, 30, 30, 45, 60, 60, 90, 120])[rng.integers(0, 8, n)])
    end = start + minutes * 60 * SECOND
    owner = _activity_owner(rng, users, accounts, links.account)
    audit = _make_audit(rng, created, now, users, owner)
    _cascade(audit, accounts.audit, links.account)
    _delete_some(rng, audit, LEAF_DELETE_RATE, now)
    archived = start // DAY < now // DAY - ARCHIVE_AGE_DAYS

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        k, part = hi - lo, slice(lo, hi)
        return {
            **links.columns(ctx, accounts, lo, hi),
            "Subject": _take(_EVENT_SUBJECTS, crng.integers(0, len(_EVENT_SUBJECTS), k)),
            "Location": _take(_EVENT_LOCATIONS, crng.integers(0, len(_EVENT_LOCATIONS), k), crng.random(k) < 0.2),
            "IsAllDayEvent": _bools(all_day[part]),
            "StartDateTime": _timestamps(start[part]),
            "EndDateTime": _timestamps(end[part]),
            "ActivityDateTime": _timestamps(start[part]),
            "ActivityDate": _dates(start[part]),
            "EndDate": _dates(np.where(all_day[part], start[part], end[part])),
            "DurationInMinutes": _numbers(minutes[part]),
            "ShowAs": _take(["Busy", "Free"], (crng.random(k) < 0.1).astype(np.int64)),
            "EventSubtype": _take(["Event"], np.zeros(k, dtype=np.int64)),
            "IsArchived": _bools(archived[part]),
        }

    _emit(ctx, "Event", lambda lo, hi: ctx.id_range("Event", lo, hi), audit, build)


# =====================================================================================================
# Subscriptions (the custom object Subscription__c).
# =====================================================================================================

_PLAN_SEAT_PRICE = {"Starter": 15.0, "Growth": 35.0, "Enterprise": 60.0}   # list price per seat per month
_PLAN_SEATS = {"Starter": (10, 0.6), "Growth": (60, 0.7), "Enterprise": (400, 0.8)}  # lognormal median, sigma
TRIAL_DAYS = 30


def _subscription_counts(rng: np.random.Generator, n: int, customer: np.ndarray,
                         weight: np.ndarray) -> np.ndarray:
    """Subscriptions per account: 0 for non-customers, 1-3 for the customers that have any, `n` in all
    (or 3 per customer when there are too few customers for the plan). Bigger customers (by `weight`)
    are likelier to have subscriptions at all."""
    counts = np.zeros(len(customer), dtype=np.int64)
    cust = np.flatnonzero(customer)
    if n <= 0 or len(cust) == 0:
        return counts
    # Weighted order without replacement (Gumbel top-k): who gets subscriptions first.
    keys = np.log(np.maximum(weight[cust], 1e-9)) + rng.gumbel(size=len(cust))
    order = cust[np.argsort(-keys, kind="stable")]
    per = np.array([1, 2, 3])[_weighted(rng, len(order), [0.55, 0.30, 0.15])]
    n = min(n, 3 * len(order))
    total = np.cumsum(per)
    if total[-1] >= n:
        k = int(np.searchsorted(total, n))           # the first k+1 customers are enough
        per = per[: k + 1].copy()
        per[-1] -= int(total[k] - n)                 # trim the last one (stays >= 1)
        counts[order[: k + 1]] = per
    else:                                            # too few customers: top them up towards 3 each
        short = n - int(total[-1])
        room = 3 - per
        extra = np.zeros_like(per)
        for i in rng.permutation(len(order)):
            if short == 0:
                break
            add = min(int(room[i]), short)
            extra[i] = add
            short -= add
        counts[order] = per + extra
    return counts


def _generate_subscriptions(ctx: _Context, accounts: _Accounts) -> None:
    """Product subscriptions of customer accounts (Account.Type "Customer - ..."), 1-3 each.

    Dates and status agree with the org's present: Active and Trial ones end after today (Active ones that
    outlived their term were auto-renewed), Expired ones ended before today, Cancelled ones ended on their
    cancellation day (today at the latest). A subscription starts on or after its account was created, and
    its record was touched when its status last changed. Trials are free; MRR is seats x plan price with a
    discount; the plan follows the account's ARR band. Owners are the account's CSM, else its owner.
    """
    obj = ctx.obj("Subscription__c")
    rng = ctx.rng("Subscription__c")
    users = ctx.users
    assert users is not None and accounts.arr is not None and accounts.csm is not None
    now = ctx.now_ms
    today = now // DAY
    customer = accounts.kind == KIND_CUSTOMER
    arr = np.nan_to_num(accounts.arr)
    counts = _subscription_counts(rng, ctx.plan["Subscription__c"], customer, np.log1p(arr) + 1.0)
    accounts.counts["Subscription__c"] = counts
    accounts.starts["Subscription__c"] = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    acct = accounts.children("Subscription__c")
    n = len(acct)

    created = _spread_after(rng, accounts.audit.created[acct], now, power=1.0)
    start = np.minimum(created // DAY + rng.integers(0, 15, n), today)
    term = np.array([365, 730, 1095])[_weighted(rng, n, [7, 2, 1])]
    natural_end = start + term
    natural_end = np.where(natural_end == today, natural_end + 1, natural_end)
    running = natural_end > today            # still within its first term
    roll = rng.random(n)
    trial = running & (today - start < TRIAL_DAYS) & (roll < 0.4)
    renewed = ~running & (roll < 0.45)       # auto-renewed past its first term: still active
    cancelled = ~trial & np.where(running, roll >= 0.88, (roll >= 0.45) & (roll < 0.6))
    expired = ~running & ~renewed & ~cancelled
    active = ~trial & ~cancelled & ~expired
    statuses = obj.fields["Status__c"].picklist_values
    status = np.select([trial, cancelled, expired], [statuses.index("Trial"), statuses.index("Cancelled"),
                                                     statuses.index("Expired")], statuses.index("Active"))

    terms_done = np.maximum((today - start) // term + 1, 1)
    renewed_end = start + terms_done * term                       # > today
    cancel_day = start + np.floor(rng.random(n) * (np.minimum(natural_end, today) - start + 1)).astype(np.int64)
    end = np.select([trial, renewed, cancelled], [start + TRIAL_DAYS, renewed_end, cancel_day], natural_end)
    auto_renew = renewed | (active & ~renewed & (rng.random(n) < 0.7))
    # When the status last changed: the cancellation or expiry day, or the latest renewal.
    changed_day = np.select([cancelled | expired, renewed], [end, renewed_end - term], start)
    floor = np.minimum(now, np.maximum(created, changed_day * DAY + rng.integers(0, DAY, n)))

    band = np.where(arr[acct] >= 250_000, 2, np.where(arr[acct] >= 50_000, 1, 0))
    shift = np.where(rng.random(n) < 0.25, rng.choice([-1, 1], n), 0)
    plan = np.clip(band + shift, 0, 2)
    plan = np.where(trial, np.minimum(plan, 1), plan)
    plans = obj.fields["Plan__c"].picklist_values
    plan_names = [plans[i] for i in range(3)]
    median = np.array([_PLAN_SEATS[p][0] for p in plan_names])[plan]
    sigma = np.array([_PLAN_SEATS[p][1] for p in plan_names])[plan]
    seats = np.maximum(1, np.round(median * np.exp(sigma * rng.standard_normal(n))))
    price = np.array([_PLAN_SEAT_PRICE[p] for p in plan_names])[plan]
    discount = 1.0 - np.round(rng.uniform(0, 0.3, n), 2)
    mrr = np.where(trial, 0.0, np.round(seats * price * discount, 2))

    own = accounts.csm[acct]
    owner = np.where(own >= 0, own, accounts.owner[acct])
    audit = _make_audit(rng, created, now, users, owner, floor=floor)
    _cascade(audit, accounts.audit, acct)
    _delete_some(rng, audit, SUBSCRIPTION_DELETE_RATE, now)
    number = ctx.start.get("Subscription__c", 0)

    def build(crng: np.random.Generator, lo: int, hi: int) -> dict[str, pa.Array]:
        part = slice(lo, hi)
        return {
            "Name": _join("SUB-", pc.utf8_lpad(pc.cast(pa.array(np.arange(number + lo, number + hi)),
                                                        pa.string()), width=6, padding="0")),
            "Account__c": pc.take(accounts.ids, pa.array(acct[part])),
            "Status__c": _take(statuses, status[part]),
            "Plan__c": _take(plans, plan[part]),
            "MRR__c": _numbers(mrr[part]),
            "Seats__c": _numbers(seats[part].astype(np.float64)),
            "Start_Date__c": _dates(start[part], are_days=True),
            "End_Date__c": _dates(end[part], are_days=True),
            "Auto_Renew__c": _bools(auto_renew[part]),
        }

    _emit(ctx, "Subscription__c", lambda lo, hi: ctx.id_range("Subscription__c", lo, hi), audit, build)


# =====================================================================================================
# Entry point.
# =====================================================================================================

def generate_org(store: OrgStore, records: int, *, seed: int = 7, now: datetime,
                 shape: str = "b2b") -> GeneratedOrg:
    """Fill `store` with about `records` records of a realistic B2B org, deterministically.

    `shape` picks the mix of objects: "b2b" (default) or "accounts" (~97% Accounts, for benchmarks).

    `now` is the org's present: every timestamp is at or before it except scheduled events and
    open opportunities' close dates. Id numbers are reserved from `store.ids`, so records created
    later through the API get fresh Ids.
    """
    plan = plan_counts(records, shape)
    ctx = _Context(store=store, seed=seed, now_ms=_to_ms(now), plan=plan)
    for name in _RESERVE_ORDER:
        if store.catalog.object(name) is None:  # a custom object this org lacks
            plan[name] = 0
            continue
        prefix = ctx.obj(name).key_prefix
        ctx.start[name] = store.ids.reserve(prefix, plan[name]) if plan[name] else 0

    users = _generate_users(ctx)
    store.admin_user_id = users.ids[0].as_py()
    _generate_record_types(ctx)
    accounts = _generate_accounts(ctx)
    contacts = _generate_contacts(ctx, accounts)
    opp_created = _generate_opportunities(ctx, accounts)
    cases = _generate_cases(ctx, accounts)
    _generate_case_comments(ctx, cases)
    _generate_tasks(ctx, accounts, contacts, opp_created, cases)
    _generate_events(ctx, accounts, contacts, opp_created, cases)
    if store.catalog.object("Subscription__c") is not None:
        _generate_subscriptions(ctx, accounts)
    _write_deleted_log(ctx)

    admin = users.ids[0].as_py()
    return GeneratedOrg(counts=dict(ctx.counts), deleted=dict(ctx.deleted), run_as_user_id=admin,
                        admin_user_id=admin, user_ids=users.ids.to_pylist())
