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
mvn -q -B -ntp -Dstyle.color=never -Dspotless.check.skip=true -DskipTests install
# the node's test classes are on the path already: its test jar would be a second copy of them
CP=$(mvn -q -B -ntp -Dstyle.color=never -pl http-api dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=/dev/stdout \
    | sed "s/\x1b\[[0-9;]*m//g" | tr ':' '\n' | grep -v 'ferry-node-.*-tests\.jar$' | paste -sd: -)
testbed/testbed.sh down >/dev/null 2>&1 || true
BED=${FERRY_TB:-/var/tmp/ferry-tb}
mkdir -p "$BED"
# the screen shows the demo's lines and progress bars; every log goes to a file under the bed
exec java -Xmx512m \
    -Dlogback.configurationFile=http-api/src/test/resources/logback-demo.xml \
    -Dlogback.statusListenerClass=ch.qos.logback.core.status.NopStatusListener \
    -Dferry.demo.log="$BED/demo.log" \
    -cp "http-api/target/test-classes:http-api/target/classes:node/target/test-classes:node/target/classes:$CP" \
    dev.ferry.api.demo.Demo "$@"
