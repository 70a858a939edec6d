"""In-memory, size-bounded stores addressed by opaque random ids (never by anything a client names)."""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")

ID_PATTERN = re.compile(r"[0-9a-f]{16}")


def is_valid_id(key: str) -> bool:
    return ID_PATTERN.fullmatch(key) is not None


class LruStore(Generic[T]):
    """Keeps the ``capacity`` most recently used items; pinned items are never evicted."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"store capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()
        self._pinned: dict[str, T] = {}
        self._lock = threading.Lock()

    def add(self, item: T, pinned: bool = False) -> str:
        key = secrets.token_hex(8)
        with self._lock:
            if pinned:
                self._pinned[key] = item
                return key
            self._items[key] = item
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> T | None:
        if not is_valid_id(key):
            return None
        with self._lock:
            if key in self._pinned:
                return self._pinned[key]
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def __len__(self) -> int:
        with self._lock:
            return len(self._items) + len(self._pinned)
