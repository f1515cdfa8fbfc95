"""What the `iss` process sets before any command runs so that a user sees only what they can act on.

- librpm (inside createrepo_c) reads <config dir>/rpmrc when it is loaded and prints
  "error: Unable to open /usr/lib/rpm/rpmrc for reading" on a machine without rpm. iss only reads
  package headers, which need no rpm configuration; in that case RPM_CONFIGDIR points at an empty
  one shipped with iss. Where rpm is installed nothing changes.
- Python warnings come from libraries and tell a developer, not the user, what to change: they are
  hidden unless asked for (`python -W ...`, PYTHONWARNINGS, or ISS_DEBUG=1)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

RPM_DEFAULT_CONFIG_DIR = Path("/usr/lib/rpm")
EMPTY_RPM_CONFIG_DIR = Path(__file__).resolve().parent / "rpmconfig"


def quiet_third_party_noise() -> None:
    use_empty_rpm_config_if_missing()
    if not sys.warnoptions and not os.environ.get("ISS_DEBUG"):
        warnings.simplefilter("ignore")


def use_empty_rpm_config_if_missing() -> None:
    """Before librpm is loaded: if the configuration it would read is absent, give it an empty one."""
    config_dir = Path(os.environ.get("RPM_CONFIGDIR") or RPM_DEFAULT_CONFIG_DIR)
    if not (config_dir / "rpmrc").is_file():
        os.environ["RPM_CONFIGDIR"] = str(EMPTY_RPM_CONFIG_DIR)
