#!/bin/bash
# Ferry test bed: N libvirt/QEMU "hypervisor hosts" on one Linux machine.
#
# Each host lives in its own network, UTS, mount and IPC namespace with its own libvirtd,
# virtlogd and sshd, a veth to a bridge on a private subnet, a unique hostname and libvirt host
# UUID, and a private datastore mounted at the same path on every host (/var/lib/one/datastores/0,
# as OpenNebula uses). Root can ssh between hosts by name with host-key checking on (the bed
# writes the known_hosts file). Nothing outside $FERRY_TB is changed, and `down` stops only what
# `up` started, found by PID and network namespace, never by name.
#
#   testbed.sh up N                 create host1..hostN (N >= 2)
#   testbed.sh down                 stop and remove everything `up` created
#   testbed.sh status               hosts, daemons, domains
#   testbed.sh exec HOST CMD...     run CMD inside HOST (host1 or 1), clean environment
#   testbed.sh mkvm HOST NAME [OPTIONS]   define and start a test guest (see usage_mkvm)
#   testbed.sh ip HOST | dir HOST   the host's address / its directory seen from the root namespace
#   testbed.sh leftovers            list what is left of a bed that is down; exit 1 if anything
#   testbed.sh pki                  (re)generate the CA and per-host TLS certificates
#   testbed.sh one-...              OpenNebula on the hosts: see testbed/opennebula.sh
#
# Environment: FERRY_TB (state, default /var/tmp/ferry-tb), FERRY_TB_NET (first three octets,
# default 10.79.0), FERRY_TB_VIRT=qemu|kvm (domain type; default qemu = TCG, because the /dev/kvm
# of the machines this was built on cannot boot a stock kernel), FERRY_TB_QEMU_USER=root|default.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(cd "$(dirname "$0")" && pwd)
TB=${FERRY_TB:-/var/tmp/ferry-tb}
HD=$TB/hosts
ST=$TB/state
NET=${FERRY_TB_NET:-10.79.0}
BR=tbferry0
DS=/var/lib/one/datastores/0
GUEST=$TB/guest
. "$HERE/opennebula.sh"

die() { echo "testbed: $*" >&2; exit 1; }
say() { echo "testbed: $*" >&2; }
hname() { case $1 in host[0-9]*) echo "$1" ;; [0-9]*) echo "host$1" ;; *) die "bad host name '$1'" ;; esac; }
hip() { local n=${1#host}; echo "$NET.$((10 + n))"; }
hpid() { cat "$HD/$1/holder.pid" 2>/dev/null; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
root_netns=$(readlink /proc/self/ns/net)
in_own_ns() { alive "$1" && [ "$(readlink /proc/"$1"/ns/net 2>/dev/null)" != "$root_netns" ]; }

# Run a command inside host $1 with a clean environment.
nsx() {
    local H=$1; shift
    local p; p=$(hpid "$H")
    in_own_ns "$p" || die "$H is not running"
    nsenter -t "$p" -n -u -m -i -- env -i PATH="$PATH" HOME=/root USER=root LOGNAME=root \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

guest_ready() {
    [ -f "$GUEST/vmlinuz" ] && [ -f "$GUEST/initrd.img" ] &&
        [ "$GUEST/initrd.img" -nt "$HERE/guest/init.sh" ] && [ "$GUEST/initrd.img" -nt "$HERE/guest/build.sh" ]
}

gen_client_ssh() {
    mkdir -p "$TB/ssh"; chmod 700 "$TB/ssh"
    [ -f "$TB/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C ferry-testbed -f "$TB/ssh/id_ed25519"
    cp "$TB/ssh/id_ed25519.pub" "$TB/ssh/authorized_keys"
    cat > "$TB/ssh/ssh_config" <<EOF
# ssh client config bind-mounted over /etc/ssh/ssh_config inside every test-bed host.
# Host keys are checked against the known_hosts file the test bed writes at 'up'.
Host *
    User root
    IdentityFile $TB/ssh/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile $TB/ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
    # AES-GCM is the fastest cipher with AES-NI: the disk copies go through ssh
    Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
EOF
}

setup_host() {
    local H=$1 D=$HD/$1 IP; IP=$(hip "$1")
    rm -rf "$D"
    mkdir -p "$D"/{run,etc-libvirt,varlib-libvirt,log-libvirt,cache-libvirt,datastore,varlib-upper,varlib-work,ferry,ssh}
    # private libvirt configuration: the distribution's, plus what a namespaced host needs
    cp -a /etc/libvirt/. "$D/etc-libvirt/"
    rm -f "$D"/etc-libvirt/qemu/*.xml "$D"/etc-libvirt/qemu/networks/autostart/*.xml
    cat >> "$D/etc-libvirt/libvirtd.conf" <<EOF

# ---- Ferry test bed ($H)
# libvirt refuses to migrate between hosts that report the same host UUID, and every
# namespaced host reads the same SMBIOS data
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
# oneadmin drives libvirt on an OpenNebula host (its group owns the socket; no polkit here)
unix_sock_group = "oneadmin"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
log_filters = "1:qemu.qemu_monitor 1:qemu.qemu_migration 1:qemu.qemu_process"
log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
EOF
    cat >> "$D/etc-libvirt/qemu.conf" <<EOF

# ---- Ferry test bed ($H)
# The host's /sys is a fresh sysfs without the cgroup mounts, and without it all hosts would
# share one cgroup tree: keep libvirt out of cgroups (the stock setting fails with
# "Failed to create v1 controller cpu for group").
cgroup_controllers = [ ]
security_driver = "none"
EOF
    if [ "${FERRY_TB_QEMU_USER:-root}" = root ]; then cat >> "$D/etc-libvirt/qemu.conf" <<EOF
# Files are created by root on every host (qemu-img, tar, rsync): run QEMU as root with no
# ownership bookkeeping. FERRY_TB_QEMU_USER=default keeps Debian's libvirt-qemu user.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
EOF
    fi
    ssh-keygen -q -t ed25519 -N '' -C "ferry-testbed-$H" -f "$D/ssh/ssh_host_ed25519_key"
    echo "$H,$IP $(cut -d' ' -f1,2 "$D/ssh/ssh_host_ed25519_key.pub")" >> "$TB/ssh/known_hosts"
    cat > "$D/sshd_config" <<EOF
ListenAddress $IP
HostKey $D/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
# root: the bed key; oneadmin: its own ~/.ssh (sshd reads it as the user)
AuthorizedKeysFile $TB/ssh/authorized_keys .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100
MaxSessions 100
PidFile /run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    one_host_setup "$H"
    # one long-running process owns the namespaces; everything else enters them with nsenter
    rm -f "$D/holder.pid"
    setsid -f sh -c "echo \$\$ > '$D/holder.pid'; exec unshare --net --uts --mount --ipc --propagation private sleep infinity" \
        </dev/null >/dev/null 2>&1
    local i=0 p=""
    while [ $i -lt 50 ]; do
        p=$(hpid "$H")
        in_own_ns "$p" && break
        sleep 0.1; i=$((i + 1))
    done
    in_own_ns "$p" || die "$H: namespace holder did not start"
    echo "$H $p $(readlink /proc/"$p"/ns/net)" >> "$ST/netns"
    ip link add "tbf-$H" type veth peer name eth0 netns "$p" || die "$H: veth"
    ip link set "tbf-$H" master $BR up
    nsenter -t "$p" -n -u -m -i -- sh -e -c "
        hostname $H
        ip link set lo up
        ip addr add $IP/24 dev eth0
        ip link set eth0 up
        # this network namespace's own sysfs (/sys/class/net shows eth0, not the root's links)
        mount -t sysfs sysfs /sys
        # a private /var/lib (overlay), so $DS can exist without touching the real /var/lib
        mount -t overlay overlay -o lowerdir=/var/lib,upperdir=$D/varlib-upper,workdir=$D/varlib-work /var/lib
        mkdir -p /var/lib/libvirt $DS /var/lib/ferry
        mount --bind $D/varlib-libvirt /var/lib/libvirt
        mount --bind $D/datastore $DS
        mount --bind $D/ferry /var/lib/ferry
        mount --bind $D/etc-libvirt /etc/libvirt
        mount --bind $D/run /run
        mount --bind $D/log-libvirt /var/log/libvirt
        mount --bind $D/cache-libvirt /var/cache/libvirt
        mount --bind $ST/hosts /etc/hosts
        mount --bind $TB/ssh/ssh_config /etc/ssh/ssh_config
        mkdir -p /run/sshd /run/lock /run/libvirt /var/log/libvirt/qemu
        chmod 755 /run/sshd
        $(one_host_mounts "$D")
    " || die "$H: namespace setup failed"
    nsx "$H" virtlogd -d || die "$H: virtlogd"
    nsx "$H" libvirtd -d || die "$H: libvirtd"
    nsx "$H" /usr/sbin/sshd -f "$D/sshd_config" || die "$H: sshd"
}

wait_host() {
    local i=0
    until nsx "$1" virsh -q -c qemu:///system uri >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 150 ] && die "$1: libvirtd not answering after 15 s"; sleep 0.1
    done
}

cmd_up() {
    local N=${1:-} t0 i j; t0=$(date +%s.%N)
    [ "$N" -ge 2 ] 2>/dev/null || die "usage: up N (N >= 2)"
    [ "$(id -u)" = 0 ] || die "must run as root (namespaces, veths, libvirtd)"
    [ -e "$ST/up" ] && die "already up (run: $0 down)"
    command -v libvirtd >/dev/null || die "libvirtd not installed: run scripts/install-deps.sh"
    mkdir -p "$ST" "$HD"
    guest_ready || "$HERE/guest/build.sh" "$GUEST" >&2 || die "guest build failed"
    gen_client_ssh
    : > "$TB/ssh/known_hosts"
    : > "$ST/netns"
    { echo "127.0.0.1 localhost"; echo "$NET.1 tb-root"
      for i in $(seq 1 "$N"); do echo "$(hip host$i) host$i"; done; } > "$ST/hosts"
    ip link add $BR type bridge 2>/dev/null || die "bridge $BR exists already (a bed from another checkout?)"
    echo "$N" > "$ST/up"
    trap 'say "up failed: tearing down"; cmd_down >/dev/null' EXIT
    ip addr add $NET.1/24 dev $BR
    ip link set $BR up
    for i in $(seq 1 "$N"); do setup_host "host$i"; done
    for i in $(seq 1 "$N"); do wait_host "host$i"; done
    for i in $(seq 1 "$N"); do for j in $(seq 1 "$N"); do
        [ "$i" = "$j" ] && continue
        nsx host$i ssh host$j true || die "ssh host$i -> host$j failed"
    done; done
    trap - EXIT
    say "up: $N hosts in $(echo "$(date +%s.%N) - $t0" | bc) s (guest: $GUEST, state: $TB)"
}

qemu_alive() {
    local f
    for f in "$1"/run/libvirt/qemu/*.pid; do
        [ -f "$f" ] && alive "$(cat "$f" 2>/dev/null)" && return 0
    done
    return 1
}

# PIDs of every process in network namespace $1 except $2
procs_in_ns() {
    local pr pid
    for pr in /proc/[0-9]*; do
        pid=${pr#/proc/}
        [ "$pid" = "$2" ] && continue
        [ "$(readlink "$pr"/ns/net 2>/dev/null)" = "$1" ] && echo "$pid"
    done
}

cmd_down() {
    local D H p ns pid f i round
    # the control node runs in the root namespace; it outlives its starter with demo.sh --keep
    f=$TB/control/pid
    if [ -f "$f" ]; then
        pid=$(cat "$f")
        if alive "$pid" && tr '\0' ' ' < /proc/"$pid"/cmdline 2>/dev/null | grep -q "$TB/control/control.conf"; then
            kill -TERM "$pid" 2>/dev/null
            i=0; while [ $i -lt 100 ] && alive "$pid"; do sleep 0.1; i=$((i + 1)); done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$f"
    fi
    for D in "$HD"/host*; do
        [ -d "$D" ] || continue
        H=${D##*/}; p=$(hpid "$H")
        if in_own_ns "$p"; then
            ns=$(readlink /proc/"$p"/ns/net)
            # 1) the guests first, gracefully: SIGTERM lets QEMU flush its images
            for f in "$D"/run/libvirt/qemu/*.pid; do
                [ -f "$f" ] && pid=$(cat "$f") && alive "$pid" && kill -TERM "$pid" 2>/dev/null
            done
            i=0; while [ $i -lt 50 ] && qemu_alive "$D"; do sleep 0.1; i=$((i + 1)); done
            # 2) everything else in this host's network namespace was started by the bed
            #    (libvirtd, virtlogd, sshd, ssh sessions, agents, ...): TERM, then KILL
            for round in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(procs_in_ns "$ns" "$p")
                [ -z "$pids" ] && break
                if [ $round -lt 8 ]; then kill -TERM $pids 2>/dev/null; else kill -KILL $pids 2>/dev/null; fi
                sleep 0.3
            done
            kill -TERM "$p" 2>/dev/null
            i=0; while [ $i -lt 30 ] && alive "$p"; do sleep 0.1; i=$((i + 1)); done
            alive "$p" && kill -KILL "$p" 2>/dev/null
        fi
        ip link del "tbf-$H" 2>/dev/null
        rm -f "$D/holder.pid"
    done
    ip link del $BR 2>/dev/null
    rm -f "$ST/up"
    say "down"
}

cmd_leftovers() {
    local found=0 l h p ns
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^($BR|tbf-host[0-9]+)$"); do
        echo "link $l"; found=1
    done
    if [ -f "$ST/netns" ]; then
        while read -r h p ns; do
            alive "$p" && [ "$(readlink /proc/"$p"/ns/net 2>/dev/null)" = "$ns" ] && { echo "holder $h pid $p"; found=1; }
            for pid in $(procs_in_ns "$ns" ""); do echo "process $pid ($(tr '\0' ' ' < /proc/"$pid"/cmdline | cut -c1-80)) in $h's namespace"; found=1; done
            if lsns -t net -n -o NS 2>/dev/null | grep -qx "$(echo "$ns" | tr -dc 0-9)"; then echo "namespace $ns of $h"; found=1; fi
        done < "$ST/netns"
    fi
    if grep -q " $TB" /proc/mounts; then grep " $TB" /proc/mounts | sed 's/^/mount /'; found=1; fi
    [ -e "$ST/up" ] && { echo "state: $ST/up still present"; found=1; }
    return $found
}

cmd_status() {
    local D H p
    ip -br addr show $BR 2>/dev/null || echo "no bridge"
    for D in "$HD"/host*; do
        [ -d "$D" ] || continue; H=${D##*/}; p=$(hpid "$H")
        if in_own_ns "$p"; then
            echo "== $H holder=$p ip=$(hip "$H") libvirtd=$(cat "$D/run/libvirtd.pid" 2>/dev/null) sshd=$(cat "$D/run/sshd.pid" 2>/dev/null)"
            nsx "$H" virsh list --all 2>&1 | sed 's/^/   /'
        else
            echo "== $H down"
        fi
    done
}

usage_mkvm() {
    cat >&2 <<EOF
usage: testbed.sh mkvm HOST NAME [options]
  --mem MIB           guest RAM (192)            --disk MIB      virtual size of disk.0 (512)
  --format F          qcow2 | raw for disk.0     --prefill MIB   random data written at 256 MiB (64);
                                                 disk.0 grows to hold it
  --snapshots N       internal snapshots snap-0..snap-N-1 taken while the guest runs (0)
  --extra F:MIB       hot-plug another disk after the snapshots (repeatable; vdb, vdc, ...)
  --cdrom             attach a read-only ISO (disk.9)
  --backing           OpenNebula's layout: disk.0 is a qcow2 over disk.0.snap/0 (the prefill lives there)
  --shared-base DIR   disk.0 is a qcow2 over DIR/NAME-base.qcow2 (absolute path), a base image in a
                      directory of the datastore that other VMs share (the prefill lives there)
  --tick S --ram MIB  guest write period and RAM dirtied per tick (0.2, 1)
  --no-start          define only
  --shmem             hot-plug an ivshmem device after the snapshots: QEMU then refuses to migrate
                      the guest live (or to take an internal snapshot of it)
EOF
    exit 2
}

# mkvm HOST NAME [options]: create disks in the host's datastore, define, start, then take
# snapshots and hot-plug extra disks while the guest runs.
cmd_mkvm() {
    [ $# -ge 2 ] || usage_mkvm
    local H; H=$(hname "$1"); local NAME=$2; shift 2
    [[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || die "bad VM name '$NAME'"
    local MEM=192 DISK=512 FMT=qcow2 PRE=64 SNAPS=0 CDROM=0 TICK=0.2 RAM=1 START=1 BACKING=0 SHMEM=0 EXTRA=() SHARED=""
    local TYPE=${FERRY_TB_VIRT:-qemu}
    while [ $# -gt 0 ]; do
        case $1 in
            --mem) MEM=$2; shift ;; --disk) DISK=$2; shift ;; --format) FMT=$2; shift ;;
            --prefill) PRE=$2; shift ;; --snapshots) SNAPS=$2; shift ;; --extra) EXTRA+=("$2"); shift ;;
            --cdrom) CDROM=1 ;; --tick) TICK=$2; shift ;; --ram) RAM=$2; shift ;; --no-start) START=0 ;;
            --backing) BACKING=1 ;;
            --shared-base) SHARED=$2; shift ;;
            --shmem) SHMEM=1 ;;
            *) usage_mkvm ;;
        esac
        shift
    done
    local DIR=$DS/$NAME HDIR=$HD/$H/datastore/$NAME
    [ $((256 + PRE)) -le "$DISK" ] || DISK=$((256 + PRE + 64))
    nsx "$H" mkdir -p "$DIR" || die "mkdir"
    local TOP=$DIR/disk.0
    if [ "$BACKING" = 1 ]; then
        # the prefill goes into the base; disk.0 is a qcow2 over it with a relative backing path
        nsx "$H" mkdir -p "$DIR/disk.0.snap" || die "mkdir"
        TOP=$DIR/disk.0.snap/0
    fi
    if [ -n "$SHARED" ]; then
        [[ $SHARED =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || die "bad shared directory '$SHARED'"
        nsx "$H" mkdir -p "$DS/$SHARED" || die "mkdir"
        TOP=$DS/$SHARED/$NAME-base.qcow2
    fi
    nsx "$H" qemu-img create -q -f "$FMT" "$TOP" "${DISK}M" || die "qemu-img create"
    if [ "$PRE" -gt 0 ]; then
        # one random file per size, kept: a 4 GiB prefill costs 20 s to generate
        local R=$TB/prefill/$PRE.raw
        if [ ! -f "$R" ]; then
            mkdir -p "$TB/prefill"
            head -c "${PRE}M" /dev/urandom > "$R.tmp" && mv "$R.tmp" "$R"
        fi
        # qemu-io refuses a single request of 2 GiB or more: write in 1 GiB pieces (each from
        # the start of the random file; the data only has to be incompressible)
        local OFF=0 LEN
        while [ "$OFF" -lt "$PRE" ]; do
            LEN=$(( PRE - OFF < 1024 ? PRE - OFF : 1024 ))
            nsx "$H" qemu-io -f "$FMT" -c "write -s $R $(( 256 + OFF ))M ${LEN}M" "$TOP" >/dev/null || die "prefill"
            OFF=$(( OFF + LEN ))
        done
    fi
    if [ "$BACKING" = 1 ]; then
        nsx "$H" sh -c "cd $DIR && qemu-img create -q -f qcow2 -F $FMT -b disk.0.snap/0 disk.0 ${DISK}M" || die "qemu-img create disk.0"
    fi
    if [ -n "$SHARED" ]; then
        nsx "$H" qemu-img create -q -f qcow2 -F "$FMT" -b "$TOP" "$DIR/disk.0" "${DISK}M" || die "qemu-img create disk.0"
    fi
    local CDXML=""
    if [ "$CDROM" = 1 ]; then
        # stands in for OpenNebula's context CD: a read-only file the guest never writes
        { echo "FERRY CONTEXT $NAME"; head -c 1M /dev/urandom; } | head -c 2M > "$HDIR/disk.9"
        CDXML="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='$DIR/disk.9'/><target dev='hdc' bus='ide'/><readonly/></disk>"
    fi
    # idle=halt: on QEMU's default (AMD-flavoured) TCG CPU the guest kernel idles in
    # amd_e400_idle, and one guest died there right after a live migration (an instruction fetch
    # from freed init memory, in the idle task). Plain HLT keeps the test about our flow.
    cat > "$HDIR/deployment.0" <<EOF
<domain type='$TYPE'>
  <name>$NAME</name>
  <memory unit='MiB'>$MEM</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$GUEST/vmlinuz</kernel>
    <initrd>$GUEST/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet idle=halt tb_tick=$TICK tb_ram=$RAM</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='$FMT'/>
      <source file='$DIR/disk.0'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    $CDXML
    <controller type='usb' model='none'/>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/$NAME.serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    nsx "$H" virsh -q define "$DIR/deployment.0" >/dev/null || die "define"
    [ "$START" = 1 ] || return 0
    nsx "$H" virsh -q start "$NAME" >/dev/null || die "start"
    wait_serial "$H" "$NAME" TBREADY 60 || die "$NAME: guest not ready within 60 s"
    local s
    for s in $(seq 0 $((SNAPS - 1))); do
        wait_records "$H" "$NAME" 1
        nsx "$H" virsh -q snapshot-create-as "$NAME" "snap-$s" >/dev/null || die "snapshot snap-$s"
    done
    local idx=1 e f size dev
    for e in "${EXTRA[@]}"; do
        f=${e%%:*}; size=${e#*:}; dev=vd$(printf "\\x$(printf %x $((97 + idx)))")
        nsx "$H" qemu-img create -q -f "$f" "$DIR/disk.$idx" "${size}M" || die "qemu-img create disk.$idx"
        nsx "$H" virsh -q attach-disk "$NAME" "$DIR/disk.$idx" "$dev" --driver qemu --subdriver "$f" \
            --targetbus virtio --persistent >/dev/null || die "attach disk.$idx"
        idx=$((idx + 1))
    done
    [ ${#EXTRA[@]} -gt 0 ] && { wait_serial "$H" "$NAME" TBDISK 30 || die "$NAME: hot-plugged disks not seen by the guest"; }
    if [ "$SHMEM" = 1 ]; then
        # a guest that can only move cold: "Migration is disabled when using feature 'peer mode'
        # in device 'ivshmem'"
        echo "<shmem name='$NAME-shm'><model type='ivshmem-plain'/><size unit='M'>1</size></shmem>" > "$HDIR/shmem.xml"
        nsx "$H" virsh -q attach-device "$NAME" "$DIR/shmem.xml" --live --config >/dev/null || die "attach shmem"
    fi
    wait_records "$H" "$NAME" 1
    return 0
}

serial_log() { echo "$HD/$1/log-libvirt/qemu/$2.serial.log"; }
# wait until the guest's serial log holds pattern $3 (max $4 s)
wait_serial() {
    local i=0 n=$(( ${4:-60} * 10 ))
    until grep -aq -- "$3" "$(serial_log "$1" "$2")" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt $n ] && return 1; sleep 0.1
    done
}
# wait until the guest has logged $3 more progress lines (it logs one every 10 records)
wait_records() {
    local f; f=$(serial_log "$1" "$2")
    local n0; n0=$(grep -ac '^TBSEQ' "$f")
    local i=0
    while [ "$(grep -ac '^TBSEQ' "$f")" -lt $((n0 + $3)) ]; do
        i=$((i + 1)); [ $i -gt 300 ] && return 1; sleep 0.1
    done
}

# The bed's PKI for Pekko's TLS between nodes (config/tls.conf reads a directory with tls.key,
# tls.crt and ca.crt): $TB/pki/<node>/ for host1..N and tb-root (the control node and the tests'
# cluster clients in the root namespace), all signed by the bed's CA; and $TB/pki/foreign/, signed
# by another CA, for the test that such a node cannot join. RSA keys: Pekko's PEM reader takes
# no others. Every certificate also names the cluster (DNS:ferry-cluster): a node accepts a peer
# only when their certificates share a name. Prints the directory.
cmd_pki() {
    local P=$TB/pki N i h ip ca
    N=$(cat "$ST/up" 2>/dev/null || echo "${1:-3}")
    # a CA that expires within a day takes every certificate with it
    if [ -f "$P/ca.pem" ] && ! openssl x509 -in "$P/ca.pem" -noout -checkend 86400 >/dev/null; then
        rm -rf "$P"
    fi
    mkdir -p "$P"; chmod 700 "$P"
    pki_ca "$P/ca" ferry-testbed-ca
    pki_ca "$P/foreign-ca" ferry-foreign-ca
    for i in $(seq 1 "$N") root foreign; do
        case $i in
            root) h=tb-root; ip=$NET.1; ca=ca ;;
            foreign) h=foreign; ip=$NET.1; ca=foreign-ca ;;
            *) h=host$i; ip=$(hip "$h"); ca=ca ;;
        esac
        pki_cert "$P" "$h" "$ip" "$ca"
    done
    # the intruder knows the bed's CA (a CA certificate is no secret): only its own certificate,
    # signed by a CA the bed does not trust, may keep it out
    cp "$P/ca.pem" "$P/foreign/ca.crt"
    echo "$P"
}

pki_ca() {
    [ -f "$1.key" ] && return 0
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$2" \
        -keyout "$1.key" -out "$1.pem" 2>/dev/null || die "CA $2"
}

# pki_cert DIR NAME IP CA: DIR/NAME/{tls.key,tls.crt,ca.crt}, unless a current one is there
pki_cert() {
    local D=$1/$2
    if [ -f "$D/tls.crt" ] && [ -f "$D/ca.crt" ] \
        && openssl x509 -in "$D/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -q ferry-cluster \
        && openssl x509 -in "$D/tls.crt" -noout -checkend 86400 >/dev/null; then
        return 0
    fi
    mkdir -p "$D"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$D/tls.key" -out "$D/tls.csr" \
        2>/dev/null || die "key $2"
    printf 'subjectAltName=DNS:%s,DNS:ferry-cluster,IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
        "$2" "$3" > "$D/ext"
    openssl x509 -req -in "$D/tls.csr" -CA "$1/$4.pem" -CAkey "$1/$4.key" -CAcreateserial \
        -days 29 -extfile "$D/ext" -out "$D/tls.crt" 2>/dev/null || die "cert $2"
    cp "$1/$4.pem" "$D/ca.crt"
    chmod 600 "$D/tls.key"
    rm -f "$D/tls.csr" "$D/ext"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    leftovers) cmd_leftovers ;;
    exec) shift; [ $# -ge 2 ] || die "usage: exec HOST CMD..."; H=$(hname "$1"); shift; nsx "$H" "$@" ;;
    mkvm) shift; cmd_mkvm "$@" ;;
    ip) hip "$(hname "${2:?usage: ip HOST}")" ;;
    dir) echo "$HD/$(hname "${2:?usage: dir HOST}")" ;;
    pki) shift; cmd_pki "$@" ;;
    one-vm) shift; cmd_one_vm "$@" ;;
    one-migrate) shift; cmd_one_migrate "$@" ;;
    one-action-xml) shift; cmd_one_action_xml "$@" ;;
    one-snapshot) shift; cmd_one_snapshot "$@" ;;
    one-revert) shift; cmd_one_revert "$@" ;;
    one-disk-snapshot) shift; cmd_one_disk_snapshot "$@" ;;
    one-shutdown) shift; cmd_one_shutdown "$@" ;;
    one-deploy) shift; cmd_one_deploy "$@" ;;
    one-sync) shift; cmd_one_sync "$@" ;;
    *) sed -n '2,25p' "$0"; sed -n '10,25p' "$HERE/opennebula.sh"; exit 2 ;;
esac
