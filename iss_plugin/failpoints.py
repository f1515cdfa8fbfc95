"""Fail points for crash tests: a named place in the code where a test can freeze a process.

    failpoint("import.before_commit")

does nothing unless the environment variable ISS_FAILPOINT names this point. Then it touches the
file named by ISS_FAILPOINT_FILE (so the test knows the process got there) and sleeps until the
process is killed. Reads the environment at each call: no set-up, no cost worth measuring."""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_NAME = "ISS_FAILPOINT"
ENV_FILE = "ISS_FAILPOINT_FILE"


def failpoint(name: str) -> None:
    if os.environ.get(ENV_NAME) != name:
        return
    marker = os.environ.get(ENV_FILE)
    if marker:
        Path(marker).touch()
    while True:  # until SIGKILL
        time.sleep(3600)
