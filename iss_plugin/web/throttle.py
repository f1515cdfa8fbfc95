"""Login throttling for the dashboard's password form: after `limit` failed logins for one login
(or `address_limit` from one client address) within `window` seconds, further attempts are refused
(429 + Retry-After) BEFORE the password is checked: the attacker learns nothing and no argon2
verification is spent.

The state is in this process's memory (a sliding window of failure times per key): several
`iss serve` processes each count on their own, and a restart forgets every counter. Memory is
bounded: at most `limit` times per key and at most `max_keys` keys per kind (the least recently
failed key is forgotten first). A successful login clears its login's failures (not its
address's: one valid account must not reset an address that guesses others' passwords).

Considered: the `limits` library (moving windows, memory/redis/memcached storages). It would add a
dependency for what is here ~60 lines, and its one real gain, a store shared between processes,
needs a redis or memcached that an iss server does not run."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000  # per kind (logins, addresses): bounds memory under a spray of made-up logins


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused: the kind of key (`login` or `address`), the key, the limit and
    window it hit, and the seconds until the oldest counted failure leaves the window."""

    kind: str
    key: str
    limit: int
    window: float
    retry_after: float


class _Window:
    """Failure times per key within the last `window` seconds (the newest `limit` only)."""

    def __init__(self, kind: str, limit: int, window: float, max_keys: int) -> None:
        self.kind, self.limit, self.window, self.max_keys = kind, limit, window, max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def refusal(self, key: str, now: float) -> Refusal | None:
        times = self.failures.get(key)
        if self.limit <= 0 or times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return None
        if len(times) < self.limit:
            return None
        return Refusal(self.kind, key, self.limit, self.window, times[0] + self.window - now)

    def fail(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        times = self.failures.get(key)
        if times is None:
            times = self.failures[key] = deque(maxlen=self.limit)
        times.append(now)
        self.failures.move_to_end(key)
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginThrottle:
    """Thread-safe (uvicorn runs sync endpoints in a thread pool). `limit`/`address_limit` 0: off."""

    def __init__(
        self,
        limit: int,
        address_limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.logins = _Window("login", limit, window, max_keys)
        self.addresses = _Window("address", address_limit, window, max_keys)
        self.clock = clock
        self.lock = threading.Lock()

    def refusal(self, login: str, address: str | None) -> Refusal | None:
        """The reason to refuse an attempt now (the longer wait when both apply), or None."""
        now = self.clock()
        with self.lock:
            found = [self.logins.refusal(login, now)]
            if address is not None:
                found.append(self.addresses.refusal(address, now))
        refusals = [r for r in found if r is not None]
        return max(refusals, key=lambda r: r.retry_after) if refusals else None

    def failed(self, login: str, address: str | None) -> Refusal | None:
        """Count a failed attempt; answers the refusal the NEXT attempt would get (the lock-out it
        starts, to audit once), or None."""
        now = self.clock()
        with self.lock:
            self.logins.fail(login, now)
            if address is not None:
                self.addresses.fail(address, now)
        return self.refusal(login, address)

    def succeeded(self, login: str) -> None:
        with self.lock:
            self.logins.clear(login)
