"""`iss watch`: notices new repository versions in the backend (made by iss or by anyone, such as
a sync run from pulp-cli) and announces each once through the outbox."""

from __future__ import annotations

import logging
import threading

from iss_plugin.bootstrap import App
from iss_plugin.services.repository_events import AnnouncedVersion, announce_new_versions

log = logging.getLogger(__name__)


def watch_once(app: App) -> list[AnnouncedVersion]:
    uow = app.uow()
    with uow:
        announced = announce_new_versions(uow, app.server_id)
        uow.commit()
    return announced


def watch_forever(app: App, stop: threading.Event, interval: float = 5.0) -> None:
    while not stop.is_set():
        try:
            for a in watch_once(app):
                log.info("announced %s version %s", a["repository"], a["version"])
        except Exception as e:  # keep watching; the next pass sees what this one missed
            log.warning("repository watcher pass failed: %s", e)
        stop.wait(interval)
