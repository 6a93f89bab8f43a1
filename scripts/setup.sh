#!/usr/bin/env bash
# Creates .venv (once) and installs edgecrystal with the extras named in $1 (default:
# train,test,ui). With the test extra, also the Debian packages the tests drive
# (scripts/setup-services.sh: postgresql, chromium, chromium-driver).
# Only Python >= 3.10 with venv and pip is needed on the machine. pip's own chatter goes to
# .venv/install.log; on failure its end is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,test,ui}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
log=.venv/install.log
echo "edgecrystal: installing .[${extras}] into .venv (log: ${log}) ..."
if ! { .venv/bin/python -m pip install --upgrade pip \
       && .venv/bin/python -m pip install -e ".[${extras}]"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "edgecrystal: installing failed; the whole log is ${log}" >&2
  exit 1
fi
case ",${extras}," in
  *,test,*) bash scripts/setup-services.sh ;;
esac
