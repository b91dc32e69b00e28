#!/bin/bash
# Install everything Ferry, its tests, its test bed and its demo need on Debian 12, from Debian's
# own packages. Idempotent: it installs only what is missing and says what it did.
#
#   sudo scripts/install-deps.sh
#
# Besides the packages it downloads Debian's cloud kernel (linux-image-cloud-amd64) and unpacks
# it, without installing it, into /var/cache/ferry/guest-kernel: the test bed's tiny guest boots it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "install-deps: run as root (apt, namespaces, libvirt)" >&2; exit 1; }

PACKAGES=(
    # build
    openjdk-17-jdk-headless maven git
    # hypervisor stack of every test-bed host
    qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
    # what the engine runs (tar ships with Debian); ssh between hosts
    rsync openssh-server openssh-client
    # test bed: namespaces, veths, bridge, tools its scripts use; jq, curl and xmllint for the
    # OpenNebula driver (OpenNebula's own KVM scripts need xmllint too)
    iproute2 util-linux procps psmisc kmod jq libxml2-utils bc busybox-static openssl curl ca-certificates
    # control-plane journal for a real cluster (CI tests the scheduler against it)
    postgresql
    # status-page test (headless) and HTTP load tool of the scheduler benchmark
    chromium chromium-driver wrk
)
GUEST_KERNEL_DIR=/var/cache/ferry/guest-kernel
DEB_DIR=/var/cache/ferry/debs

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
fi

# Debian starts PostgreSQL's default cluster only under systemd; the tests start their own
# server in a temporary directory, so nothing else is needed here.

if ls "$GUEST_KERNEL_DIR"/boot/vmlinuz-* >/dev/null 2>&1; then
    echo "install-deps: guest kernel already unpacked in $GUEST_KERNEL_DIR ($(basename "$(ls "$GUEST_KERNEL_DIR"/boot/vmlinuz-* | tail -1)"))"
else
    echo "install-deps: downloading linux-image-cloud-amd64 (unpacked for the test guest, not installed)"
    mkdir -p "$DEB_DIR" "$GUEST_KERNEL_DIR"
    # apt drops privileges to _apt for downloads; let it write there
    if id _apt >/dev/null 2>&1; then chown _apt "$DEB_DIR"; fi
    (
        cd "$DEB_DIR"
        apt-get download -q linux-image-cloud-amd64
        # the meta package depends on the versioned image that carries the kernel and modules
        image=$(dpkg-deb -f linux-image-cloud-amd64_*.deb Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep '^linux-image-' | head -1)
        apt-get download -q "$image"
        dpkg-deb -x "$(ls "${image}"_*.deb | head -1)" "$GUEST_KERNEL_DIR"
    )
    echo "install-deps: guest kernel unpacked: $(ls "$GUEST_KERNEL_DIR"/boot/vmlinuz-*)"
fi

# The test bed runs guests under TCG unless FERRY_TB_VIRT=kvm; say what this machine offers.
if [ -c /dev/kvm ]; then
    echo "install-deps: /dev/kvm present (test bed still defaults to TCG; see testbed/README.md)"
else
    echo "install-deps: no /dev/kvm: test-bed guests run under TCG"
fi
echo "install-deps: done"
