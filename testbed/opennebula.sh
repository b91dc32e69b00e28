# OpenNebula 7 as it looks from a KVM host, for the test bed (sourced by testbed.sh).
#
# Written from the documented behaviour of OpenNebula (docs/opennebula.md lists the facts): the
# `oneadmin` user, remotes in /var/tmp/one, the system datastore under /var/lib/one//datastores
# (the double slash is OpenNebula's default), VM directories as the `local` TM and the KVM deploy
# make them, transient domains, system snapshots with their snap-N.xml, TM disk snapshots as a
# qcow2 chain, and a front-end that runs a live migration as oned's driver does. None of it is
# OpenNebula's code.
#
#   one-vm HOST VMID [options]      deploy VM VMID on HOST as OpenNebula would (see usage_one_vm)
#   one-migrate VMID SRC DST        the front-end's live migration: premigrate, the driver call
#                                   as oneadmin over ssh with the action XML on stdin, then
#                                   postmigrate or failmigrate; exits with the driver's code
#   one-action-xml VMID SRC DST     print the action XML one-migrate would send
#   one-snapshot HOST VMID N        a system snapshot snap-N as OpenNebula's snapshot_create takes it
#   one-revert HOST VMID N          virsh snapshot-revert --force as OpenNebula's snapshot_revert
#   one-disk-snapshot HOST VMID DISK N   a TM local live disk snapshot: disk.DISK.snap/N+1
#   one-shutdown HOST VMID          OpenNebula's cancel: destroy, wait until dominfo fails
#   one-deploy HOST VMID            OpenNebula's deploy of deployment.0 (snapshots redefined)
#   one-sync DIR                    DIR/install-frontend.sh (Ferry's driver as the kvm-ferry
#                                   VM_MAD remotes) on every host's /var/tmp/one
#
# Per VM the bed keeps $ST/one/VMID (shell variables) and a history sequence: the front-end's
# view of the VM, which the action XML is built from.

ONE_DS=/var/lib/one//datastores/0
ONE_IMG=/var/lib/one//datastores/1
ONE_UID=9869

# Called by setup_host: oneadmin (a private passwd/group/shadow), /var/tmp/one and /etc/ferry,
# all private to the host and seen from the root namespace under hosts/HOST/.
one_host_setup() {
    local H=$1 D=$HD/$1
    mkdir -p "$D/one-tmp/vmm/kvm" "$D/one-tmp/vmm/kvm-ferry" "$D/etc-ferry" "$D/one-etc"
    cp /etc/passwd /etc/group /etc/shadow "$D/one-etc/"
    grep -q '^oneadmin:' "$D/one-etc/passwd" || {
        echo "oneadmin:x:$ONE_UID:$ONE_UID:OpenNebula:/var/lib/one:/bin/bash" >> "$D/one-etc/passwd"
        echo "oneadmin:x:$ONE_UID:" >> "$D/one-etc/group"
        echo "oneadmin:*:19000:0:99999:7:::" >> "$D/one-etc/shadow"
    }
    chmod 640 "$D/one-etc/shadow"
    # OpenNebula's stand-in for its own migrate script: a plain live migration for disks that
    # both hosts see (what it does for a shared system datastore). Ferry's driver calls it as
    # migrate.orig for what it does not take.
    cat > "$D/one-tmp/vmm/kvm/migrate" <<'EOF'
#!/bin/bash
# test bed stand-in for OpenNebula's vmm/kvm/migrate (shared storage): a plain live migration
echo "INFO: stand-in kvm/migrate $*" >&2
cat > /dev/null
exec virsh -c qemu:///system migrate --live "$1" "qemu+ssh://$2/system"
EOF
    chmod 755 "$D/one-tmp/vmm/kvm/migrate"
    chown -R $ONE_UID:$ONE_UID "$D/one-tmp"
}

# Called inside the host's mount namespace setup (after /var/lib is private).
one_host_mounts() {
    local D=$1
    echo "
        mount --bind $D/one-etc/passwd /etc/passwd
        mount --bind $D/one-etc/group /etc/group
        mount --bind $D/one-etc/shadow /etc/shadow
        mkdir -p /var/tmp/one /etc/ferry
        mount --bind $D/one-tmp /var/tmp/one
        mount --bind $D/etc-ferry /etc/ferry
        mkdir -p /var/lib/one/datastores/1
        mkdir -p /var/lib/one/.ssh
        cp $TB/ssh/id_ed25519.pub /var/lib/one/.ssh/authorized_keys
        chown $ONE_UID:$ONE_UID /var/lib/one /var/lib/one/datastores /var/lib/one/datastores/1
        chown -R $ONE_UID:$ONE_UID /var/lib/one/.ssh
    "
}

usage_one_vm() {
    cat >&2 <<EOF
usage: testbed.sh one-vm HOST VMID [options]
  --mem MIB            guest RAM (128)
  --prefill MIB        random data in the image (16)
  --no-context         no context CD (disk.2)
  --persistent MIB     a persistent qcow2 data image of MIB as disk.1 (vdb)
  --image-base HASH    disk.0.snap/0 is a qcow2 over ${ONE_IMG}/HASH, a base image in the image
                       datastore that other VMs use too (made by the first VM that names it)
  --snapshots N        system snapshots snap-0..snap-N-1, taken as snapshot_create does
  --shared-ds          the front-end sees the system datastore as shared (SHARED=YES)
  --no-start           write the VM directory only
EOF
    exit 2
}

one_conf() { echo "$ST/one/$1"; }

cmd_one_vm() {
    [ $# -ge 2 ] || usage_one_vm
    local H; H=$(hname "$1"); local ID=$2; shift 2
    [[ $ID =~ ^[0-9]{1,6}$ ]] || die "bad VM id '$ID'"
    local MEM=128 PRE=16 CONTEXT=1 PERSIST=0 BASE="" SNAPS=0 START=1 SHAREDDS=NO
    while [ $# -gt 0 ]; do
        case $1 in
            --mem) MEM=$2; shift ;; --prefill) PRE=$2; shift ;; --no-context) CONTEXT=0 ;;
            --persistent) PERSIST=$2; shift ;; --image-base) BASE=$2; shift ;;
            --snapshots) SNAPS=$2; shift ;; --no-start) START=0 ;; --shared-ds) SHAREDDS=YES ;;
            *) usage_one_vm ;;
        esac
        shift
    done
    [ -z "$BASE" ] || [[ $BASE =~ ^[0-9a-f]{8,32}$ ]] || die "bad image hash '$BASE'"
    local NAME=one-$ID DIR=$ONE_DS/$ID UUID; UUID=$(cat /proc/sys/kernel/random/uuid)
    local SIZE=$((256 + PRE + 64))
    mkdir -p "$ST/one"
    nsx "$H" install -d -o oneadmin -g oneadmin "$DIR" "$DIR/disk.0.snap" || die "mkdir $DIR"
    # disk.0: the image copy in disk.0.snap/0 (TM local clone), or a qcow2 over a shared base
    local IMG0=$DIR/disk.0.snap/0
    if [ -n "$BASE" ]; then
        if ! nsx "$H" test -f "$ONE_IMG/$BASE"; then
            nsx "$H" qemu-img create -q -f qcow2 "$ONE_IMG/$BASE" "${SIZE}M" || die "base image"
            one_prefill "$H" "$ONE_IMG/$BASE" "$PRE"
        fi
        nsx "$H" qemu-img create -q -f qcow2 -F qcow2 -b "$ONE_IMG/$BASE" "$IMG0" "${SIZE}M" || die "disk.0"
    else
        nsx "$H" qemu-img create -q -f qcow2 "$IMG0" "${SIZE}M" || die "disk.0"
        one_prefill "$H" "$IMG0" "$PRE"
    fi
    nsx "$H" ln -s disk.0.snap/0 "$DIR/disk.0" || die "disk.0 link"
    # oned writes the disk.N links into the deployment file; the KVM deploy resolves them
    local DISKS="<disk type='file' device='disk'><source file='$DIR/disk.0'/><target dev='vda' bus='virtio'/><driver name='qemu' type='qcow2' cache='none'/></disk>"
    if [ "$PERSIST" -gt 0 ]; then
        nsx "$H" install -d -o oneadmin -g oneadmin "$DIR/disk.1.snap" || die "mkdir"
        nsx "$H" qemu-img create -q -f qcow2 "$DIR/disk.1.snap/0" "${PERSIST}M" || die "disk.1"
        nsx "$H" ln -s disk.1.snap/0 "$DIR/disk.1" || die "disk.1 link"
        DISKS+="<disk type='file' device='disk'><source file='$DIR/disk.1'/><target dev='vdb' bus='virtio'/><driver name='qemu' type='qcow2' cache='none'/></disk>"
    fi
    if [ "$CONTEXT" = 1 ]; then
        # the context CD: a read-only image OpenNebula writes once at deploy
        { echo "ONE CONTEXT VMID=$ID"; head -c 1M /dev/urandom; } | head -c 1M > "$HD/$H/datastore/$ID/disk.2"
        DISKS+="<disk type='file' device='cdrom'><source file='$DIR/disk.2'/><target dev='hda' bus='ide'/><readonly/><driver name='qemu' type='raw'/></disk>"
    fi
    cat > "$(one_conf "$ID")" <<EOF
ONE_UUID=$UUID
ONE_CONTEXT=$CONTEXT
ONE_PERSIST=$PERSIST
ONE_BASE=$BASE
ONE_MEM=$MEM
ONE_SEQ=0
ONE_SNAPS=""
ONE_SHARED=$SHAREDDS
EOF
    cat > "$(one_conf "$ID").deployment" <<EOF
<domain type='${FERRY_TB_VIRT:-qemu}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
	<name>$NAME</name>
	<uuid>$UUID</uuid>
	<memory unit='MiB'>$MEM</memory>
	<vcpu>1</vcpu>
	<os>
		<type arch='x86_64' machine='pc'>hvm</type>
		<kernel>$GUEST/vmlinuz</kernel>
		<initrd>$GUEST/initrd.img</initrd>
		<cmdline>console=ttyS0 quiet idle=halt tb_tick=0.2 tb_ram=1</cmdline>
	</os>
	<features><acpi/></features>
	<clock offset='utc'/>
	<on_poweroff>destroy</on_poweroff>
	<on_reboot>restart</on_reboot>
	<on_crash>destroy</on_crash>
	<devices>
		<emulator>/usr/bin/qemu-system-x86_64</emulator>
		$DISKS
		<controller type='usb' model='none'/>
		<serial type='pty'><log file='/var/log/libvirt/qemu/$NAME.serial.log' append='on'/><target port='0'/></serial>
		<console type='pty'><target type='serial' port='0'/></console>
		<memballoon model='none'/>
	</devices>
	<metadata>
		<one:vm xmlns:one="http://opennebula.org/xmlns/libvirt/1.0">
			<one:system_datastore><![CDATA[$DIR]]></one:system_datastore>
			<one:name><![CDATA[vm-$ID]]></one:name>
			<one:uname><![CDATA[oneadmin]]></one:uname>
			<one:uid>0</one:uid>
			<one:gname><![CDATA[oneadmin]]></one:gname>
			<one:gid>0</one:gid>
			<one:opennebula_version>7.0.0</one:opennebula_version>
			<one:stime>$(date +%s)</one:stime>
			<one:deployment_time>$(date +%s)</one:deployment_time>
		</one:vm>
	</metadata>
</domain>
EOF
    one_vm_xml "$ID" "$H" > "$HD/$H/datastore/$ID/vm.xml"
    ( . "$(one_conf "$ID")"; one_ds_xml ) > "$HD/$H/datastore/$ID/ds.xml"
    nsx "$H" chown -R oneadmin:oneadmin "$DIR"
    [ "$START" = 1 ] || return 0
    cmd_one_deploy "$H" "$ID"
    local s
    for s in $(seq 0 $((SNAPS - 1))); do
        wait_records "$H" "$NAME" 1
        cmd_one_snapshot "$H" "$ID" "$s"
    done
    wait_records "$H" "$NAME" 1
    echo "$UUID"
}

one_prefill() {
    local H=$1 F=$2 PRE=$3
    [ "$PRE" -gt 0 ] || return 0
    local R=$TB/prefill/$PRE.raw
    if [ ! -f "$R" ]; then
        mkdir -p "$TB/prefill"
        head -c "${PRE}M" /dev/urandom > "$R.tmp" && mv "$R.tmp" "$R"
    fi
    nsx "$H" qemu-io -f qcow2 -c "write -s $R 256M ${PRE}M" "$F" >/dev/null || die "prefill $F"
}

# OpenNebula's deploy: oned writes deployment.0 (disks named by their disk.N links), the KVM
# deploy rewrites each link to the file it points at now, runs virsh create (a transient domain),
# then redefines every snap-N.xml
cmd_one_deploy() {
    local H; H=$(hname "$1"); local ID=$2 DIR=$ONE_DS/$2 f n target
    local DEP=$HD/$H/datastore/$ID/deployment.0
    cp "$(one_conf "$ID").deployment" "$DEP" || die "deployment.0"
    for f in "$HD/$H/datastore/$ID"/disk.*; do
        [ -L "$f" ] || continue
        n=${f##*/}; target=$(readlink "$f")
        [ "${target:0:1}" = / ] || target=$DIR/$target
        sed -i "s#source file='$DIR/$n'#source file='$target'#" "$DEP"
    done
    chown $ONE_UID:$ONE_UID "$DEP"
    nsx "$H" virsh -q create "$DIR/deployment.0" >/dev/null || die "create one-$ID"
    wait_serial "$H" "one-$ID" TBREADY 60 || die "one-$ID: guest not ready within 60 s"
    for f in $(cd "$HD/$H/datastore/$ID" && ls -v snap-*.xml 2>/dev/null); do
        nsx "$H" virsh -q snapshot-create "one-$ID" "$DIR/$f" --redefine >/dev/null || true
    done
}

cmd_one_snapshot() {
    local H; H=$(hname "$1"); local ID=$2 N=$3 DIR=$ONE_DS/$2
    nsx "$H" virsh -q snapshot-create-as "one-$ID" --name "snap-$N" >/dev/null || die "snapshot snap-$N"
    nsx "$H" sh -c "virsh snapshot-dumpxml one-$ID snap-$N > $DIR/snap-$N.xml" || die "dumpxml"
    . "$(one_conf "$ID")"
    sed -i "s/^ONE_SNAPS=.*/ONE_SNAPS=\"${ONE_SNAPS:+$ONE_SNAPS }$N\"/" "$(one_conf "$ID")"
}

cmd_one_revert() {
    local H; H=$(hname "$1")
    nsx "$H" virsh snapshot-revert --force "$(one_uuid "$2")" "snap-$3"
}

# TM local's live disk snapshot of a qcow2 disk: a new qcow2 in disk.D.snap over the current
# one (relative backing name), an external disk-only snapshot without metadata onto it, and
# disk.D re-pointed at it
cmd_one_disk_snapshot() {
    local H; H=$(hname "$1"); local ID=$2 DISK=$3 N=$4 DIR=$ONE_DS/$2
    local SNAPDIR=$DIR/disk.$DISK.snap NEXT=$(( $4 + 1 )) TARGET
    TARGET=vd$(printf "\\x$(printf %x $((97 + DISK)))")
    local PREV; PREV=$(nsx "$H" readlink "$DIR/disk.$DISK") || die "readlink"
    PREV=${PREV##*/}
    nsx "$H" sh -c "cd $SNAPDIR && qemu-img create -q -f qcow2 -F qcow2 -b $PREV $SNAPDIR/$NEXT" || die "qemu-img"
    local X="<domainsnapshot><name>$DISK-$N</name><disks>"
    local d
    for d in $(nsx "$H" virsh domblklist "one-$ID" | awk 'NR>2 && $1 != "" {print $1}'); do
        if [ "$d" = "$TARGET" ]; then X+="<disk name='$d' snapshot='external'><source file='$SNAPDIR/$NEXT'/></disk>"
        else X+="<disk name='$d' snapshot='no'/>"; fi
    done
    X+="</disks></domainsnapshot>"
    echo "$X" > "$HD/$H/datastore/$ID/.snapshot-$DISK-$N.xml"
    nsx "$H" virsh -q snapshot-create "one-$ID" --disk-only --atomic --no-metadata --reuse-external \
        --xmlfile "$DIR/.snapshot-$DISK-$N.xml" >/dev/null || die "disk snapshot"
    rm -f "$HD/$H/datastore/$ID/.snapshot-$DISK-$N.xml"
    nsx "$H" ln -sfn "disk.$DISK.snap/$NEXT" "$DIR/disk.$DISK" || die "ln"
    nsx "$H" chown -R oneadmin:oneadmin "$SNAPDIR"
}

cmd_one_shutdown() {
    local H; H=$(hname "$1"); local U; U=$(one_uuid "$2") i=0
    nsx "$H" virsh -q destroy "$U" >/dev/null 2>&1
    while nsx "$H" virsh -q dominfo "$U" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 100 ] && die "one-$2 still defined on $H after 10 s"; sleep 0.1
    done
}

one_uuid() { ( . "$(one_conf "$1")" && echo "$ONE_UUID" ); }

one_ds_xml() {
    echo "<DATASTORE><ID>0</ID><NAME>system</NAME><DS_MAD>-</DS_MAD><TM_MAD>local</TM_MAD><BASE_PATH>/var/lib/one//datastores/0</BASE_PATH><TYPE>1</TYPE><DISK_TYPE>0</DISK_TYPE><STATE>0</STATE><TEMPLATE><ALLOW_ORPHANS>FORMAT</ALLOW_ORPHANS><DISK_TYPE>FILE</DISK_TYPE><DS_MIGRATE>YES</DS_MIGRATE><SHARED>${ONE_SHARED:-NO}</SHARED><TM_MAD>local</TM_MAD><TYPE>SYSTEM_DS</TYPE></TEMPLATE></DATASTORE>"
}

# The VM as oned describes it (the parts a driver reads): disks with their TM, the context,
# system snapshots, the history record of the migration ($3: its sequence and host)
one_vm_xml() {
    local ID=$1 H=$2
    . "$(one_conf "$ID")"
    local SEQ=${3:-$ONE_SEQ} HIST_HOST=${4:-$H} n
    echo -n "<VM><ID>$ID</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><NAME>vm-$ID</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE><DEPLOY_ID>$ONE_UUID</DEPLOY_ID><TEMPLATE>"
    [ "$ONE_CONTEXT" = 1 ] && echo -n "<CONTEXT><DISK_ID>2</DISK_ID><NETWORK>YES</NETWORK><TARGET>hda</TARGET></CONTEXT>"
    echo -n "<DISK><CLONE>YES</CLONE><DATASTORE_ID>1</DATASTORE_ID><DISK_ID>0</DISK_ID><DISK_TYPE>FILE</DISK_TYPE><DRIVER>qcow2</DRIVER><FORMAT>qcow2</FORMAT><IMAGE_ID>5</IMAGE_ID><SOURCE>/var/lib/one//datastores/1/${ONE_BASE:-3c0b8e9a2f6d4c1e}</SOURCE><TARGET>vda</TARGET><TM_MAD>$([ -n "$ONE_BASE" ] && echo qcow2 || echo local)</TM_MAD><TYPE>FILE</TYPE></DISK>"
    [ "$ONE_PERSIST" -gt 0 ] && echo -n "<DISK><CLONE>NO</CLONE><DATASTORE_ID>1</DATASTORE_ID><DISK_ID>1</DISK_ID><DISK_TYPE>FILE</DISK_TYPE><DRIVER>qcow2</DRIVER><FORMAT>qcow2</FORMAT><IMAGE_ID>17</IMAGE_ID><PERSISTENT>YES</PERSISTENT><SOURCE>/var/lib/one//datastores/1/9f8e7d6c5b4a3928</SOURCE><TARGET>vdb</TARGET><TM_MAD>local</TM_MAD><TYPE>FILE</TYPE></DISK>"
    echo -n "<FEATURES><ACPI>yes</ACPI></FEATURES><MEMORY>$ONE_MEM</MEMORY>"
    for n in $ONE_SNAPS; do
        echo -n "<SNAPSHOT><ACTIVE>NO</ACTIVE><HYPERVISOR_ID>snap-$n</HYPERVISOR_ID><NAME>snapshot $n</NAME><SNAPSHOT_ID>$n</SNAPSHOT_ID></SNAPSHOT>"
    done
    echo -n "<TM_MAD_SYSTEM>local</TM_MAD_SYSTEM><VMID>$ID</VMID></TEMPLATE><USER_TEMPLATE><HYPERVISOR>kvm</HYPERVISOR></USER_TEMPLATE>"
    echo -n "<HISTORY_RECORDS><HISTORY><OID>$ID</OID><SEQ>$SEQ</SEQ><HOSTNAME>$HIST_HOST</HOSTNAME><VM_MAD>kvm-ferry</VM_MAD><TM_MAD>local</TM_MAD><DS_ID>0</DS_ID><ACTION>0</ACTION></HISTORY></HISTORY_RECORDS></VM>"
    echo
}

# The plain action XML oned's VMM driver gets for MIGRATE (VMM_DRIVER_ACTION_DATA): the history
# record is the new one (next sequence, the destination host)
one_action_xml() {
    local ID=$1 S=$2 T=$3 SEQ=$4
    . "$(one_conf "$ID")"
    echo -n "<VMM_DRIVER_ACTION_DATA><HOST>$S</HOST><MIGR_HOST>$T</MIGR_HOST><DEPLOY_ID>$ONE_UUID</DEPLOY_ID><LOCAL_DEPLOYMENT_FILE/><REMOTE_DEPLOYMENT_FILE/><CHECKPOINT_FILE/>"
    echo -n "<TM_COMMAND>MIGRATE local $S $T $ONE_DS/$ID $ID 0"$'\n'"</TM_COMMAND><TM_COMMAND_ROLLBACK/><DISK_TARGET_PATH>$ONE_DS/$ID</DISK_TARGET_PATH>"
    one_vm_xml "$ID" "$S" "$SEQ" "$T" | tr -d '\n'
    one_ds_xml | tr -d '\n'
    echo "</VMM_DRIVER_ACTION_DATA>"
}

cmd_one_action_xml() {
    local ID=$1; . "$(one_conf "$ID")"
    one_action_xml "$ID" "$(hname "$2")" "$(hname "$3")" "$((ONE_SEQ + 1))"
}

# oned's live migration (one_vmm_exec's migrate action, TM local): premigrate on the destination
# (the VM directory there is removed), the VMM driver call on the source as oneadmin through
# `ssh ... bash -s` with the action XML in a here-document, then postmigrate (the source's VM
# directory is removed) or failmigrate (nothing, for local). Prints the driver's stderr as oned
# would log it; exits with the driver's code.
#   FERRY_TB_ONE_SEQ=N   reuse history sequence N (onevm recover --retry), not the next one
cmd_one_migrate() {
    local ID=$1 S T; S=$(hname "$2"); T=$(hname "$3")
    local CONF; CONF=$(one_conf "$ID"); [ -f "$CONF" ] || die "no OpenNebula VM $ID in this bed"
    . "$CONF"
    local SEQ=${FERRY_TB_ONE_SEQ:-$((ONE_SEQ + 1))}
    local XML; XML=$(one_action_xml "$ID" "$S" "$T" "$SEQ")
    nsx "$T" rm -rf "$ONE_DS/$ID" || die "premigrate on $T"
    local rc=0
    ssh -F "$TB/ssh/ssh_config" -l oneadmin "$(hip "$S")" bash -s <<EOF || rc=$?
cat << 'EOT' | /var/tmp/one/vmm/kvm-ferry/migrate '$ONE_UUID' '$T' '$S' $ID $S
$XML
EOT
EOF
    if [ "$rc" = 0 ]; then
        sed -i "s/^ONE_SEQ=.*/ONE_SEQ=$SEQ/" "$CONF"
        nsx "$S" rm -rf "$ONE_DS/$ID" || die "postmigrate on $S"
    fi
    return "$rc"
}

# Ferry's front-end installer, then onehost sync: DIR/install-frontend.sh runs on each host's
# /var/tmp/one as it would on the front-end's remotes (kvm-ferry/migrate is Ferry's, the other
# actions link to kvm's, migrate.orig to kvm/migrate)
cmd_one_sync() {
    local DIR=${1:?usage: one-sync DIR} D
    for D in "$HD"/host*; do
        [ -d "$D/one-tmp" ] || continue
        "$DIR/install-frontend.sh" "$D/one-tmp" >/dev/null || die "install-frontend.sh on $D"
    done
}
