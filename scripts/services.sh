#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer at the URLs Billy is configured with, installing them from
# Debian packages and starting them when they are local and absent, then creates the databases.
#
#   scripts/services.sh            for `make run`  (BILLY_DATABASE_URL, BILLY_REDIS_URL)
#   scripts/services.sh test       for `make test` (BILLY_TEST_DATABASE_URL, BILLY_TEST_REDIS_URL)
set -euo pipefail

mode=${1:-run}
if [ "$mode" = test ]; then
  db_url=${BILLY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/billy_test?sslmode=disable}
  redis_url=${BILLY_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
else
  db_url=${BILLY_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/billy?sslmode=disable}
  redis_url=${BILLY_REDIS_URL:-redis://127.0.0.1:6379/0}
fi

say() { echo "services: $*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# host_port URL DEFAULT_PORT -> "host port"
host_port() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" = "$rest" ] && port=$2
  [ -z "$host" ] && host=127.0.0.1
  echo "$host $port"
}

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
is_local() { case "$1" in 127.0.0.1|localhost|::1) return 0;; *) return 1;; esac; }

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || { say "apt-get not found: install $* yourself"; exit 1; }
  if [ -z "$apt_updated" ]; then sudo_ apt-get update -qq; apt_updated=1; fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # host port name
  for _ in $(seq 1 60); do reachable "$1" "$2" && return 0; sleep 0.5; done
  say "$3 did not come up on $1:$2"; exit 1
}

read -r pg_host pg_port <<<"$(host_port "$db_url" 5432)"
if ! reachable "$pg_host" "$pg_port"; then
  is_local "$pg_host" || { say "PostgreSQL at $pg_host:$pg_port is not reachable (not local, so not starting it)"; exit 1; }
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL from Debian packages"
    apt_install postgresql postgresql-contrib
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  conf=/etc/postgresql/$ver/main
  # Local development and tests use trust auth on loopback, as the defaults in DESIGN.md assume.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"; then
    sudo_ sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  fi
  say "starting PostgreSQL $ver"
  sudo_ pg_ctlcluster --skip-systemctl-redirect "$ver" main start || sudo_ service postgresql start
  wait_for "$pg_host" "$pg_port" PostgreSQL
fi

read -r r_host r_port <<<"$(host_port "$redis_url" 6379)"
if ! reachable "$r_host" "$r_port"; then
  is_local "$r_host" || { say "Redis at $r_host:$r_port is not reachable (not local, so not starting it)"; exit 1; }
  if ! command -v redis-server >/dev/null; then
    say "installing Redis from Debian packages"
    apt_install redis-server
  fi
  say "starting Redis"
  sudo_ mkdir -p /var/lib/redis /var/log/redis
  sudo_ redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$r_port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/billy.log
  wait_for "$r_host" "$r_port" Redis
fi

# Create the database named in the URL when it is missing.
if ! command -v psql >/dev/null; then apt_install postgresql-client; fi
dbname=${db_url##*/}
dbname=${dbname%%\?*}
admin_url=${db_url%/*}/postgres
[ "${db_url#*\?}" != "$db_url" ] && admin_url="$admin_url?${db_url#*\?}"
if [ -n "$dbname" ] && ! psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
  say "creating database $dbname"
  psql "$admin_url" -qc "CREATE DATABASE \"$dbname\"" >/dev/null
fi
say "PostgreSQL $pg_host:$pg_port and Redis $r_host:$r_port are up"
