#!/bin/bash
# The test command (README, .ci/run): unit tests, then the end-to-end tests on the real
# multi-host libvirt/QEMU test bed (testbed/testbed.sh), which need root. Any skipped
# end-to-end test fails the run: a skipped test proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: the test-bed tests need root" >&2; exit 1; }

# a bed left over by an interrupted run would make `up` refuse
testbed/testbed.sh down >/dev/null 2>&1 || true

# the scheduler's PostgreSQL journal is tested against a local cluster; stopped again if started here
eval "$(scripts/test-postgres.sh)"
stop_postgres() { [ -z "${FERRY_TEST_POSTGRES_STARTED:-}" ] || pg_ctlcluster $FERRY_TEST_POSTGRES_STARTED stop || true; }
trap stop_postgres EXIT

mvn -B -ntp verify "$@"

echo
echo "== end-to-end tests on the real test bed (failsafe reports)"
total=0; skipped=0
for f in */target/failsafe-reports/TEST-*.xml; do
    [ -f "$f" ] || continue
    t=$(sed -n 's/.*<testsuite [^>]*tests="\([0-9]*\)".*/\1/p' "$f" | head -1)
    s=$(sed -n 's/.*<testsuite [^>]*skipped="\([0-9]*\)".*/\1/p' "$f" | head -1)
    printf '   %-60s tests=%s skipped=%s\n' "$(basename "$f" .xml | sed 's/^TEST-//')" "${t:-?}" "${s:-0}"
    total=$((total + ${t:-0})); skipped=$((skipped + ${s:-0}))
done
echo "   total: $total end-to-end tests, $skipped skipped"
if [ "$total" = 0 ] || [ "$skipped" != 0 ]; then
    echo "scripts/test.sh: end-to-end tests were skipped or did not run" >&2
    exit 1
fi
