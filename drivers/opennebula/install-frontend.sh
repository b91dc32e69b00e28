#!/bin/bash
# Installs Ferry's migrate action on an OpenNebula front-end as the VM_MAD remotes "kvm-ferry":
#
#   drivers/opennebula/install-frontend.sh [REMOTES]      (default /var/lib/one/remotes)
#
# REMOTES/vmm/kvm-ferry/ gets Ferry's migrate; every other action there is a link to OpenNebula's
# own kvm one, and migrate.orig links to kvm/migrate (what Ferry hands a shared datastore, Ceph or
# LVM disks and same-host datastore changes to). OpenNebula's upgrades reinstall
# remotes/vmm/kvm/ only, so they never overwrite Ferry's driver, and kvm-ferry follows their fixes
# of the other actions. Run it again after an upgrade that adds an action. It prints the oned.conf
# block and the commands that finish the installation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
remotes=${1:-/var/lib/one/remotes}
kvm=$remotes/vmm/kvm
dir=$remotes/vmm/kvm-ferry
[ -d "$kvm" ] || { echo "install-frontend: no $kvm (is this an OpenNebula front-end?)" >&2; exit 1; }
owner=$(stat -c %u:%g "$kvm")

mkdir -p "$dir"
for f in "$kvm"/*; do
    name=${f##*/}
    [ "$name" = migrate ] && continue
    ln -sfn "../kvm/$name" "$dir/$name"
done
ln -sfn ../kvm/migrate "$dir/migrate.orig"
install -m 0755 "$here/migrate" "$dir/migrate"
chown -h -R "$owner" "$dir"

cat <<EOF
install-frontend: $dir is ready. To finish:
1. oned.conf: a VM_MAD for it (then restart oned), next to the kvm one:
     VM_MAD = [
         NAME           = "kvm-ferry",
         SUNSTONE_NAME  = "KVM (Ferry)",
         EXECUTABLE     = "one_vmm_exec",
         ARGUMENTS      = "-t 15 -r 0 kvm-ferry -p",
         DEFAULT        = "vmm_exec/vmm_exec_kvm.conf",
         TYPE           = "kvm",
         KEEP_SNAPSHOTS = "yes",
         LIVE_RESIZE    = "yes",
         SUPPORT_SHAREABLE = "yes"
     ]
   -t is the number of driver actions at once for all hosts together; a live migration holds
   one for its whole length (see README: sizing the driver threads).
2. Register the hypervisors with it:   onehost create <host> -i kvm -v kvm-ferry
3. Copy the remotes to them:           onehost sync --force
4. On every hypervisor (as root): curl, jq and xmllint (libxml2-utils), and
     /etc/ferry/driver.conf     FERRY_URL=http://127.0.0.1:8480 (the local Ferry node)
     /etc/ferry/driver-token    this host's own token (ferry.api.auth.host-tokens-file on the
                                Ferry side), owner root:oneadmin, mode 0640
EOF
