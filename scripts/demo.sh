#!/bin/bash
# The main job: a live demo on a local 3-host test bed. Installs what is missing, builds, brings
# up the bed, starts one agent per host plus a control node (scheduler + API, H2 journal), boots
# three guests on host1, drains host1 through the HTTP API with a progress bar per migration,
# and prints a report per VM. Leaves the machine clean unless --keep.
#   scripts/demo.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, libvirt)" >&2; exit 1; }
scripts/install-deps.sh
echo "==> building"
mvn -q -B -ntp -Dspotless.check.skip=true -DskipTests install
CP=$(mvn -q -B -ntp -Dstyle.color=never -pl http-api dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=/dev/stdout | sed "s/\x1b\[[0-9;]*m//g")
testbed/testbed.sh down >/dev/null 2>&1 || true
exec java -Xmx512m \
    -cp "http-api/target/test-classes:http-api/target/classes:node/target/test-classes:node/target/classes:$CP" \
    dev.ferry.api.demo.Demo "$@"
