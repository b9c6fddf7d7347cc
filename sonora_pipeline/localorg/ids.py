"""Salesforce record Ids: a 3-character key prefix, a pod/instance part, a counter, and the 3-character
case-safe suffix that turns the 15-character Id into the 18-character form the API always returns."""

from __future__ import annotations

import itertools
import threading

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def case_safe_suffix(id15: str) -> str:
    """The 3 checksum characters: for each 5-character chunk, bit i is set when char i is upper case."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:(chunk + 1) * 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to_18(id_: str) -> str:
    """Accept a 15- or 18-character Id and return the 18-character form (as the API accepts both)."""
    if len(id_) == 18:
        return id_[:15] + case_safe_suffix(id_[:15])
    if len(id_) == 15:
        return id_ + case_safe_suffix(id_)
    raise ValueError(f"not a Salesforce Id: {id_!r}")


def is_valid_id(id_: str) -> bool:
    if len(id_) not in (15, 18) or not all(c in _BASE62 for c in id_):
        return False
    return len(id_) == 15 or id_[15:] == case_safe_suffix(id_[:15])


def _base62(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "".join(reversed(chars))


def make_id(prefix: str, n: int, pod: str = "5g0") -> str:
    """The n-th Id of an object: deterministic, so a generated org is the same on every run."""
    id15 = prefix + pod + _base62(n, 9)
    return id15 + case_safe_suffix(id15)


class IdAllocator:
    """Hands out fresh Ids per key prefix, thread-safe, continuing after what the generator used."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def reserve(self, prefix: str, count: int) -> int:
        """Reserve `count` numbers for `prefix`; returns the first. The generator uses this in bulk."""
        with self._lock:
            start = self._next(prefix)
            self._counters[prefix] = itertools.count(start + count)
            return start

    def copy(self) -> IdAllocator:
        """Another allocator continuing from where this one is (a forked org's: its own Ids from there)."""
        twin = IdAllocator()
        with self._lock:
            for prefix, counter in self._counters.items():
                n = next(counter)
                self._counters[prefix] = itertools.count(n)
                twin._counters[prefix] = itertools.count(n)
        return twin

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return make_id(prefix, self._next(prefix))

    def _next(self, prefix: str) -> int:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return next(counter)
