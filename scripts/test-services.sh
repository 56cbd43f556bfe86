#!/usr/bin/env bash
# Make sure what the test suite talks to is there before it runs:
#   - PostgreSQL at SWITCHBOARD_TEST_POSTGRES_URL (default 127.0.0.1:5432): started when it
#     is installed here but stopped; a clear error when it is missing (never a silent skip);
#   - Redis at SWITCHBOARD_TEST_REDIS_URL (default 127.0.0.1:6379), the same way;
#   - Node.js and node_modules (npm ci), for the Node.js client test and buf;
#   - promtool, prometheus and amtool, for the checks of observability/ (installed with
#     apt-get when run as root, else a clear message: observability/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
URL="${SWITCHBOARD_TEST_POSTGRES_URL:-$DEFAULT_URL}"
# libpq does not know SQLAlchemy's "+driver" part of the scheme.
LIBPQ_URL="${URL/+asyncpg/}"

die() {
  echo "test-services: $*" >&2
  exit 1
}

postgres_answers() {
  if command -v pg_isready >/dev/null; then
    pg_isready --quiet --timeout=3 --dbname="$LIBPQ_URL"
  elif [ -x .venv/bin/python ]; then
    .venv/bin/python - "$LIBPQ_URL" <<'EOF'
import asyncio, sys
import asyncpg

async def probe() -> None:
    connection = await asyncpg.connect(sys.argv[1], timeout=3)
    await connection.close()

try:
    asyncio.run(probe())
except Exception:
    sys.exit(1)
EOF
  else
    return 1
  fi
}

# The port the URL names (5432 when it names none), and whether its host is this machine.
url_port() {
  local rest="${LIBPQ_URL#*://}"
  rest="${rest#*@}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  if [[ "$rest" =~ :([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; else echo 5432; fi
}

url_is_local() {
  local rest="${LIBPQ_URL#*://}"
  rest="${rest#*@}"
  rest="${rest%%/*}"
  rest="${rest%:*}"
  case "$rest" in
    "" | 127.0.0.1 | localhost | "[::1]") return 0 ;;
    *) return 1 ;;
  esac
}

start_local_postgres() {
  local port version cluster cluster_port status started=1
  port="$(url_port)"
  while read -r version cluster cluster_port status _; do
    if [ "$cluster_port" = "$port" ] && [ "$status" != "online" ]; then
      echo "test-services: starting PostgreSQL $version/$cluster on port $port" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start \
        || die "could not start PostgreSQL $version/$cluster (see /var/log/postgresql/)."
      started=0
    fi
  done < <(pg_lsclusters --no-header)
  return "$started"
}

ensure_postgres() {
  postgres_answers && return 0
  if url_is_local && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] \
    && [ -n "$(ls -A /etc/postgresql)" ]; then
    start_local_postgres || die "PostgreSQL is installed but no stopped cluster listens on" \
      "port $(url_port); start it, or set SWITCHBOARD_TEST_POSTGRES_URL."
    for _ in $(seq 30); do
      postgres_answers && return 0
      sleep 1
    done
    die "started PostgreSQL, but it does not answer at $URL (see /var/log/postgresql/)."
  fi
  die "the test suite needs PostgreSQL and none answers at $URL.
  Either install one here (it is started by this script from then on):
      apt-get install -y postgresql
  and allow user postgres on 127.0.0.1 without a password (trust in pg_hba.conf),
  or point the tests at a running server:
      export SWITCHBOARD_TEST_POSTGRES_URL=postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB"
}

REDIS_URL="${SWITCHBOARD_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"

redis_answers() {
  if command -v redis-cli >/dev/null; then
    [ "$(timeout 5 redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = "PONG" ]
  elif [ -x .venv/bin/python ]; then
    .venv/bin/python - "$REDIS_URL" <<'EOF'
import sys
import redis

try:
    redis.Redis.from_url(sys.argv[1], socket_timeout=3, socket_connect_timeout=3).ping()
except Exception:
    sys.exit(1)
EOF
  else
    return 1
  fi
}

# The host and port the Redis URL names (6379 when it names none).
redis_host_port() {
  local rest="${REDIS_URL#*://}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  if [[ "$rest" =~ ^(.*):([0-9]+)$ ]]; then
    echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
  else
    echo "$rest 6379"
  fi
}

ensure_redis() {
  redis_answers && return 0
  local host port
  read -r host port < <(redis_host_port)
  case "$host" in
    "" | 127.0.0.1 | localhost | "[::1]")
      if command -v redis-server >/dev/null; then
        echo "test-services: starting Redis on port $port" >&2
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" \
          --save "" --appendonly no >/dev/null \
          || die "could not start redis-server on port $port."
        for _ in $(seq 30); do
          redis_answers && return 0
          sleep 1
        done
        die "started Redis, but it does not answer at $REDIS_URL."
      fi
      ;;
  esac
  die "the test suite needs Redis and none answers at $REDIS_URL.
  Either install one here (it is started by this script from then on):
      apt-get install -y redis-server
  or point the tests at a running server:
      export SWITCHBOARD_TEST_REDIS_URL=redis://[:PASSWORD@]HOST:PORT/DB"
}

ensure_node() {
  command -v node >/dev/null \
    || die "the Node.js client test needs Node.js 18+ and npm: apt-get install -y nodejs npm"
  command -v npm >/dev/null || die "npm is missing: apt-get install -y npm"
  # npm ci writes node_modules/.package-lock.json: older than the lock file means stale.
  if [ ! -f node_modules/.package-lock.json ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "test-services: installing node_modules (npm ci)" >&2
    npm ci --silent --no-audit --no-fund >/dev/null
  fi
}

ensure_postgres
ensure_redis
ensure_node
observability/install-tools.sh
echo "test-services: PostgreSQL answers at ${URL}, Redis at ${REDIS_URL};" \
  "node_modules is installed" >&2
