#!/bin/busybox sh
# /init of the Ferry test guest (busybox, PID 1).
#
# The guest proves "no write lost" from the inside. On every writable virtio disk it keeps
# writing numbered 64 KiB records with O_DIRECT and a header naming the last record written:
#   [0, 512)                  "TBLAST <seq> first <first-seq-on-this-disk>"
#   slot s (64 KiB) at (16 + s mod NBLK) * 64 KiB: 512-byte "TBSEQ <seq> up <uptime>", then random
# NBLK = min(4096, disk size / 64 KiB - 16), so records of a 512 MiB disk live in [1, 257) MiB and
# [448, 512) MiB stays free for host-side marker patterns (qemu-io).
# Every tick it also dirties tb_ram MiB of a tmpfs ring (RAM that the migration must carry) and
# re-reads records seq-1, -5, -25, -150 with O_DIRECT, reporting mismatches as TBVERIFYFAIL.
# Disks plugged in later (hot-plug) are picked up at the next tick.
# On cold boot it checks up to 50 records below each disk's header (TBBOOT). On the ACPI power
# button it prints TBSHUTDOWN with the last record and powers off; that line is what the host
# compares with the header found in the file afterwards. The pause before poweroff lets the UART
# drain: "poweroff -f" does not wait for the console, and a lost TBSHUTDOWN line fails the check.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
exec </dev/console >/dev/console 2>&1
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk evdev button; do
    insmod /mods/$m.ko 2>/dev/null
done
TICK=0.2; RAMMB=1; BASE=16; RAMRING=48
for a in $(cat /proc/cmdline); do
    case $a in
        tb_tick=*) TICK=${a#*=} ;;
        tb_ram=*) RAMMB=${a#*=} ;;
    esac
done
mount -t tmpfs -o size=$((RAMRING + 16))m tmpfs /tmp
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || { echo "TBERR no /dev/vda"; while true; do sleep 60; done; }

nblk() { # records that fit on disk $1
    local n=$(( $(cat /sys/block/$1/size) * 512 / 65536 - BASE ))
    [ $n -gt 4096 ] && n=4096
    echo $n
}
writable() { [ -b /dev/$1 ] && [ "$(cat /sys/block/$1/ro 2>/dev/null)" = 0 ] && [ "$(nblk $1)" -gt 200 ]; }
rd512() { # $1 disk, $2 byte offset: first 40 bytes of that sector, read around the page cache
    dd if=/dev/$1 bs=512 count=1 skip=$(($2 / 512)) iflag=direct 2>/dev/null | head -c 40 | tr -d '\000'
}
slotoff() { echo $(( (BASE + ($2 % $(eval echo \$N_$1))) * 65536 )); }
check() { # $1 disk, $2 seq: silent when the record is there
    local exp got again
    exp=$(printf 'TBSEQ %010d' $2)
    got=$(rd512 $1 $(slotoff $1 $2))
    case "$got" in "$exp "*) return 0 ;; esac
    again=$(rd512 $1 $(slotoff $1 $2))
    echo "TBVERIFYFAIL disk=$1 seq=$2 (at seq=$seq, up $(cut -d' ' -f1 /proc/uptime)) got='$got' reread='$again'"
    return 1
}
DISKS=""
adopt() { # start writing to disk $1 from record $2 on
    eval N_$1=$(nblk $1)
    eval FIRST_$1=$2
    DISKS="$DISKS $1"
}

# Cold boot: resume the sequence from vda's header and check every disk that has one.
seq=0
for d in $(ls /sys/block | grep '^vd'); do
    writable $d || continue
    eval N_$d=$(nblk $d)
    hdr=$(rd512 $d 0)
    case "$hdr" in
        TBLAST*)
            last=$(echo "$hdr" | sed 's/^TBLAST 0*\([0-9]*\).*/\1/'); last=${last:-0}
            first=$(echo "$hdr" | sed -n 's/.* first 0*\([0-9]*\).*/\1/p'); first=${first:-1}
            ok=0; bad=0; k=0
            while [ $k -lt 50 ] && [ $((last - k)) -ge "$first" ] && [ $((last - k)) -gt 0 ]; do
                if check $d $((last - k)); then ok=$((ok + 1)); else bad=$((bad + 1)); fi
                k=$((k + 1))
            done
            echo "TBBOOT disk=$d last_on_disk=$last checked=$k ok=$ok bad=$bad"
            [ $d = vda ] && seq=$last
            adopt $d "$first"
            ;;
    esac
done
case " $DISKS " in *" vda "*) ;; *) adopt vda 1 ;; esac
echo "TBREADY seq=$seq disks=$(echo $DISKS | tr ' ' ,) tick=$TICK ram=${RAMMB}MiB"

for ev in /dev/input/event*; do [ -e "$ev" ] && cat "$ev" > /tmp/pwr.${ev##*/} & done
dd if=/dev/urandom of=/tmp/ram bs=1M count=$RAMRING 2>/dev/null
fails=0
while true; do
    seq=$((seq + 1))
    for d in $(ls /sys/block | grep '^vd'); do
        case " $DISKS " in *" $d "*) ;; *) writable $d && adopt $d $seq && echo "TBDISK $d from seq=$seq" ;; esac
    done
    rec=$(printf 'TBSEQ %010d up %s' $seq "$(cut -d' ' -f1 /proc/uptime)")
    for d in $DISKS; do
        [ -b /dev/$d ] || continue
        first=$(eval echo \$FIRST_$d)
        { printf '%-511s\n' "$rec"; dd if=/dev/urandom bs=65024 count=1 2>/dev/null; } |
            dd of=/dev/$d bs=65536 seek=$(( $(slotoff $d $seq) / 65536 )) iflag=fullblock conv=notrunc oflag=direct 2>/dev/null
        printf '%-511s\n' "$(printf 'TBLAST %010d first %010d' $seq $first)" |
            dd of=/dev/$d bs=512 conv=notrunc oflag=direct 2>/dev/null
        for k in 1 5 25 150; do
            [ $((seq - k)) -ge "$first" ] && [ $k -lt "$(eval echo \$N_$d)" ] && { check $d $((seq - k)) || fails=$((fails + 1)); }
        done
    done
    dd if=/dev/urandom of=/tmp/ram bs=1M count=$RAMMB seek=$(( (seq * RAMMB) % RAMRING )) conv=notrunc 2>/dev/null
    [ $((seq % 10)) = 0 ] && echo "TBSEQ $seq up $(cut -d' ' -f1 /proc/uptime) verify_fails=$fails"
    for f in /tmp/pwr.*; do
        [ -s "$f" ] && { echo "TBSHUTDOWN last=$seq verify_fails=$fails disks=$(echo $DISKS | tr ' ' ,)"; sync; sleep 1; poweroff -f; }
    done
    sleep $TICK
done
