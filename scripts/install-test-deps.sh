#!/usr/bin/env bash
# What the test suite needs beyond the Python packages: Debian's dnf (a real yum client),
# createrepo_c and rpm (the floor in bench/, and yum checks), xorriso (ISO checks), chromium +
# chromium-driver (the dashboard's browser test).
set -euo pipefail
need=()
command -v dnf >/dev/null || need+=(dnf)
dnf download --help >/dev/null 2>&1 || need+=(dnf-plugins-core)  # `dnf download` in tests/integration
command -v createrepo_c >/dev/null || need+=(createrepo-c)
command -v rpm >/dev/null || need+=(rpm)
command -v xorriso >/dev/null || need+=(xorriso)
command -v rpmkeys >/dev/null || need+=(rpm)  # product GPG keys: signature checks on import
command -v gpg >/dev/null || need+=(gpg)  # product GPG keys: reading keys, signing fixtures
command -v chromium >/dev/null || need+=(chromium)  # the dashboard's browser test (headless)
command -v chromedriver >/dev/null || need+=(chromium-driver)  # selenium drives chromium through it
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
