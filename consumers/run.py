"""`iss run`: every role of one server in one process (relay, workers, watcher, reconcile).

On the embedded default the bus is kombu memory:// (one process only) and the database SQLite;
with RabbitMQ each role can also run as its own process (`iss worker export` ...). With `listen`
("host:port") the dashboard is served too, by uvicorn in a thread, stopped with the runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.adapters.bus.relay import relay_from_settings
from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import UsageError
from iss_plugin.services import propagation
from iss_plugin.services.event_retention import prune_events
from iss_plugin.services.maintenance import collect_garbage
from iss_plugin.web.server import BackgroundServer, parse_listen
from producers.repository_watcher import watch_forever

from .roles import ROLES
from .workers import make_worker

log = logging.getLogger(__name__)
ALL_ROLES = ("relay", *ROLES, "watch", "reconcile")
PRUNE_BATCHES_PER_PASS = 20  # at most 100,000 old event rows a pass: the reconcile pass is not held up


@dataclass
class Runtime:
    app: App
    roles: Iterable[str] = ALL_ROLES
    relay_poll: float = 0.1
    watch_interval: float = 5.0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    workers: list[EventConsumer] = field(default_factory=list)
    listen: str | None = None  # "host:port": serve the dashboard too
    web: BackgroundServer | None = None

    def start(self) -> Runtime:
        roles = list(self.roles)
        unknown = set(roles) - set(ALL_ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}: choose from {', '.join(ALL_ROLES)}")
        for role in (r for r in roles if r in ROLES):
            worker = make_worker(self.app, role)
            self.workers.append(worker)
            self._thread(f"worker-{role}", worker.run)
        if "relay" in roles:
            relay = relay_from_settings(
                self.app.settings,
                self.app.session_factory,
                queues_of=[w.topology for w in self.workers],
                poll_interval=self.relay_poll,
            )
            self._thread("relay", lambda: relay.run_forever(self.stop))
        if "watch" in roles:
            self._thread("watch", lambda: watch_forever(self.app, self.stop, self.watch_interval))
        if "reconcile" in roles:
            self._thread("reconcile", self._reconcile_loop)
        if self.listen:
            self._serve(self.listen)
        return self

    def _serve(self, listen: str) -> None:
        """The dashboard is secondary to the workers: when its port is taken (a second `iss run` on
        this machine), say so and run without it."""
        host, port = parse_listen(listen)
        try:
            self.web = BackgroundServer(self.app, host, port).start()
        except UsageError as e:
            log.warning("%s; running without the dashboard (set web_listen, or --no-serve)", e.message)

    def _thread(self, name: str, target: Callable[[], object]) -> None:
        t = threading.Thread(target=target, name=f"iss-{name}@{self.app.server_id}", daemon=True)
        t.start()
        self.threads.append(t)

    def _reconcile_loop(self) -> None:
        ctx = self.app.source_context()
        while not self.stop.wait(self.app.settings.reconcile_interval_seconds):
            try:
                for made in propagation.reconcile(self.app.uow(), ctx):
                    log.info("reconcile: re-sent %s to %s", made["bundle_id"], made["destination"])
                removed = collect_garbage(self.app)
                if removed:
                    log.info("store: removed %d unreferenced files", removed)
            except Exception as e:
                log.warning("reconcile pass failed: %s", e)
            try:  # on its own: a backend that is down (Pulp's orphan cleanup) does not stop it
                self._prune_events()
            except Exception as e:
                log.warning("event retention pass failed: %s", e)

    def _prune_events(self) -> None:
        days = self.app.settings.event_retention_days
        pruned = prune_events(self.app.uow, days, max_batches=PRUNE_BATCHES_PER_PASS)
        if pruned.outbox or pruned.processed:
            log.info(
                "events: deleted %d sent outbox rows and %d processed markers older than %d days"
                " (%d transactions, the longest %.3f s%s)",
                pruned.outbox,
                pruned.processed,
                days,
                pruned.transactions,
                pruned.longest_transaction_seconds,
                "" if pruned.complete else "; more next pass",
            )

    def shutdown(self, timeout: float = 30.0) -> None:
        if self.web is not None:
            self.web.stop()
        self.stop.set()
        for w in self.workers:
            w.should_stop = True
        for t in self.threads:
            t.join(timeout)

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
