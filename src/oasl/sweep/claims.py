"""Claims of runs with a lease and a heartbeat, so sweeps sharing a store never train a run twice.

A runner claims the runs it is about to train (:meth:`oasl.store.Store.claim`), a heartbeat thread
renews the claim every ``lease_s / 4`` seconds while it trains, and the claim is released once the
result is written. Another sweep skips a live claim and takes over an expired one: the run of a runner
killed with SIGKILL runs again after at most ``lease_s`` seconds, or at once when the dead runner was a
process on this machine (its process id no longer exists). This is Optuna's heartbeat for RUNNING
trials (``heartbeat_interval``, ``grace_period``) applied to oasl's runs.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable

from oasl.store import Store

DEFAULT_LEASE_S = 60.0


def owner_id() -> str:
    """A claim owner for this process: ``host:pid:nonce`` (the nonce tells apart a reused process id)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_dead(owner: str) -> bool:
    """True when ``owner`` (from :func:`owner_id`) was a process on this host that no longer exists.

    Owners on other hosts are never judged dead here: their claims end by lease expiry."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by another user
        return False
    return False


class Lease:
    """Context manager: claim ``keys`` for this process, renew the claim while inside, release on exit.

    ``claimed`` holds the keys actually claimed (the others are held by live runners elsewhere or are
    finished). ``lease_s`` is the claim's lifetime without renewal, in seconds."""

    def __init__(
        self, store: Store, keys: Iterable[str], lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ):
        self.store, self.keys, self.lease_s = store, list(keys), float(lease_s)
        self.owner = owner or owner_id()
        self.claimed: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.claimed = self.store.claim(self.keys, self.owner, self.lease_s, dead=owner_dead)
        if self.claimed:
            self._thread = threading.Thread(target=self._beat, name="oasl-lease", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                self.store.renew(self.claimed, self.owner, self.lease_s)
            except Exception:  # a busy store misses one beat; the lease outlives four
                continue

    def release(self, keys: Iterable[str]) -> None:
        """Release some claimed keys early (their results are written)."""
        keys = [k for k in keys if k in self.claimed]
        if keys:
            self.store.release(keys, self.owner)
            self.claimed = [k for k in self.claimed if k not in keys]

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.claimed:
            try:
                self.store.release(self.claimed, self.owner)
            except Exception:
                if exc[0] is None:
                    raise
                # already failing (a full disk): the first error is the one to report; the claim
                # lapses as a killed runner's does (its owner is dead once this process exits)
