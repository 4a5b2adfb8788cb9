#!/usr/bin/env bash
# Sets up Grid One-Map on Debian/Ubuntu and runs it. Idempotent: a second run only checks.
#
#   bash scripts/setup.sh demo   # set up, load the demo street, open the dashboard
#   bash scripts/setup.sh test   # set up, run the whole test suite
#   bash scripts/setup.sh setup  # set up only
#
# What "set up" means: the system packages (PostgreSQL + PostGIS unless DATABASE_URL is set;
# CJK fonts and Pango for the PDF briefing; Chromium and poppler for the tests), Python 3.11
# and a virtualenv in .venv with requirements.txt, and the database migrated to the current
# schema (the embedded cluster in .local/pg when DATABASE_URL is unset).
set -euo pipefail

MODE="${1:-setup}"
case "$MODE" in demo|test|setup) ;; *) echo "usage: $0 demo|test|setup" >&2; exit 64 ;; esac
cd "$(dirname "$0")/.."
ROOT="$PWD"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- system packages ------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi
APT_UPDATED=0
apt_install() {  # installs the named packages that are missing
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    echo "missing system packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  say "installing system packages: ${missing[*]}"
  if [ $APT_UPDATED -eq 0 ]; then $SUDO apt-get update -qq || return 1; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || return 1
}

pg_version() {  # newest PostgreSQL server installed, empty if none
  ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1 || true
}

if [ -z "${DATABASE_URL:-}" ]; then
  # Note: Debian's postgresql package also creates (and on systemd machines starts) a
  # system cluster on port 5432; the project does not use it.
  if [ -z "$(pg_version)" ]; then apt_install postgresql; fi
  PGV="$(pg_version)"
  if [ -z "$PGV" ]; then echo "PostgreSQL did not install; see the messages above" >&2; exit 1; fi
  apt_install "postgresql-$PGV" "postgresql-$PGV-postgis-3"
fi
# The briefing (dashboard/briefing) renders PDFs with WeasyPrint (Pango, HarfBuzz subsetting)
# in Noto Sans CJK SC, the same font its matplotlib maps use.
apt_install fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
if [ "$MODE" = test ]; then
  # pdftotext / pdftoppm: the tests read the briefing's text and render its pages to PNG
  apt_install poppler-utils
  # Browser tests drive Debian's chromium; elsewhere point GRIDONE_CHROMIUM at a Chromium.
  if [ -z "${GRIDONE_CHROMIUM:-}" ] && ! apt_install chromium; then
    echo "Chromium is needed for the browser tests. Debian: apt-get install chromium." >&2
    echo "Ubuntu ships it as a snap: snap install chromium, then" >&2
    echo "  GRIDONE_CHROMIUM=/snap/bin/chromium bash scripts/setup.sh test" >&2
    exit 1
  fi
fi

# --- Python 3.11 and the virtualenv ---------------------------------------------------------
PY="$(command -v python3.11 || true)"
if [ -z "$PY" ]; then
  apt_install python3.11 python3.11-venv || true
  PY="$(command -v python3.11 || true)"
  if [ -z "$PY" ]; then
    echo "Python 3.11 is required and could not be installed with apt-get." >&2
    echo "Debian 12 has it (apt-get install python3.11 python3.11-venv); Ubuntu 24.04 does" >&2
    echo "not: install Python 3.11 another way (e.g. the deadsnakes PPA) and re-run." >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3.11-venv
    "$PY" -m venv .venv
  fi
fi
STAMP=.venv/.requirements.sha256
WANT="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  say "installing Python packages (requirements.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$WANT" > "$STAMP"
fi
PYTHON="$ROOT/.venv/bin/python"

# --- database -------------------------------------------------------------------------------
say "database: migrating to the current schema"
"$PYTHON" -m store migrate
if [ "$MODE" != setup ]; then
  # the dashboard connects as gridone_app (row-level security applies); its generated
  # password is kept in .local/app.json (mode 600), never typed
  say "dashboard database login (gridone_app)"
  "$PYTHON" -m store users app-password --save --if-missing
fi

case "$MODE" in
  setup)
    say "ready: bash scripts/setup.sh demo | bash scripts/setup.sh test"
    ;;
  demo)
    "$PYTHON" -m loaders demo --if-empty
    # demo users with generated passwords, kept in .local/demo-logins.txt (mode 600)
    LOGINS="$("$PYTHON" -m store users demo-logins)"
    PORT="${GRIDONE_PORT:-8501}"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      PORT="$("$PYTHON" -c 'from store.local import free_port; print(free_port())')"
    fi
    URL="http://localhost:$PORT"
    say "demo logins (also in .local/demo-logins.txt, readable only by you):"
    printf '%s\n' "$LOGINS"
    say "opening the dashboard at $URL  (Ctrl+C stops it)"
    if { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; } && command -v xdg-open >/dev/null; then
      (sleep 4; xdg-open "$URL" >/dev/null 2>&1 || true) &
    fi
    exec "$PYTHON" -m streamlit run dashboard/app.py --server.port "$PORT"
    ;;
  test)
    say "running the test suite"
    # a skipped test fails the run here, as on CI: every test must really run
    GRIDONE_FAIL_ON_SKIP=1 exec "$PYTHON" -m pytest
    ;;
esac
