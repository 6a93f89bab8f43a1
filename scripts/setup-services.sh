#!/usr/bin/env bash
# Debian packages the tests drive for real: PostgreSQL (the index on a server), chromium with
# its driver (the review page in a browser) and qemu-user (INT8 checked on an emulated AVX2 CPU
# without VNNI, tests/test_int8_emulated.py). Installs what is missing when run as root with
# apt-get (CI); otherwise says in one line what is missing: those tests then skip.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .venv
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v qemu-x86_64 >/dev/null 2>&1 || missing+=(qemu-user)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "edgecrystal: ${missing[*]} not installed (needs root and apt-get); the PostgreSQL," \
       "browser and emulated-CPU tests will skip: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
log=.venv/apt.log
echo "edgecrystal: installing ${missing[*]} with apt-get (log: ${log}) ..."
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
       --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "edgecrystal: apt-get install ${missing[*]} failed; the whole log is ${log}" >&2
  exit 1
fi
