#!/bin/bash
# A local PostgreSQL for the tests of the scheduler's journal: starts Debian's cluster (creating it
# if the package left none), and makes a role and a database for the tests. Idempotent.
# Prints the environment the tests read; scripts/test.sh evaluates it:
#   FERRY_TEST_POSTGRES_URL, FERRY_TEST_POSTGRES_USER, FERRY_TEST_POSTGRES_PASSWORD, and
#   FERRY_TEST_POSTGRES_STARTED ("<version> <cluster>" if this script started it)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "test-postgres: run as root" >&2; exit 1; }
command -v pg_lsclusters >/dev/null || { echo "test-postgres: postgresql is not installed (scripts/install-deps.sh)" >&2; exit 1; }

cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main >&2
    cluster="$version main"
fi
set -- $cluster
started=""
if ! pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $4}' | grep -q online; then
    pg_ctlcluster "$1" "$2" start >&2
    started="$1 $2"
fi
port=$(pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $3}')

# a password only the tests of this machine use; the role can do nothing but own its database
password=ferry-test-journal
psql_() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
for _ in $(seq 1 30); do psql_ -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done
if [ "$(psql_ -c "select 1 from pg_roles where rolname = 'ferry_test'")" != 1 ]; then
    psql_ -c "create role ferry_test login password '$password'" >&2
fi
if [ "$(psql_ -c "select 1 from pg_database where datname = 'ferry_test'")" != 1 ]; then
    psql_ -c "create database ferry_test owner ferry_test" >&2
fi
echo "export FERRY_TEST_POSTGRES_URL=jdbc:postgresql://127.0.0.1:$port/ferry_test"
echo "export FERRY_TEST_POSTGRES_USER=ferry_test"
echo "export FERRY_TEST_POSTGRES_PASSWORD=$password"
# set when this script started the cluster: scripts/test.sh stops it again at the end
echo "export FERRY_TEST_POSTGRES_STARTED='$started'"
