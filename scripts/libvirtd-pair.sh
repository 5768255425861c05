#!/bin/bash
# One libvirtd 9.0 of a migration pair: its own state under DIR, inside the
# network namespace NS (which the caller made), a TCP listener on
# 127.0.0.1:PORT without authentication, its own host_uuid, incoming
# migrations on ports MIGPORT..MIGPORT+7 (libvirt refuses a loopback
# migration_address or migration_host: clients name the address with
# `virsh migrate --migrateuri tcp://127.0.0.1`; the namespace has no other).
# Run it twice with distinct arguments for a source and a destination on
# one machine.
#
#   libvirtd-pair.sh start DIR NS PORT HOST_UUID MIGPORT REAPER
#   libvirtd-pair.sh stop DIR
#
# REAPER is a child sub-reaper (the libvirt harness's reaper.py): libvirtd's
# QEMUs daemonize, and the reaper collects them at once when they exit.
#
# Isolation: libvirtd runs in a private mount namespace where
# /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt
# are bind mounts of directories under DIR, /run/libvirt is a fresh tmpfs,
# the cgroup hierarchy is hidden (no cgroups are made), and /etc/passwd and
# /etc/group are private copies holding the libvirt-qemu account Debian's
# build expects. Only the QEMU driver is loaded: no networks, no firewall.
# QEMU runs as root without a security driver. The QEMUs inherit the mount
# namespace; `stop` kills exactly the processes in it.
set -euo pipefail

log() { echo "libvirtd-pair: $*" >&2; }

running_pid() {
    local dir=$1 pid
    [ -r "$dir/libvirtd.pid" ] || return 0
    pid="$(tr -dc '0-9' < "$dir/libvirtd.pid")"
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null |
        grep -q -- "--config $dir/libvirtd.conf" && echo "$pid"
    return 0
}

write_config() {
    local dir=$1 port=$2 uuid=$3 mig=$4
    cat > "$dir/libvirtd.conf" <<CONF
unix_sock_dir = "$dir/sock"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$port"
auth_tcp = "none"
host_uuid = "$uuid"
log_outputs = "3:file:$dir/log/libvirtd.log"
CONF
    cat > "$dir/etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
migration_port_min = $mig
migration_port_max = $((mig + 7))
CONF
    : > "$dir/etc/libvirt.conf"
    cp /etc/passwd "$dir/passwd"
    cp /etc/group "$dir/group"
    grep -q '^libvirt-qemu:' "$dir/passwd" ||
        echo 'libvirt-qemu:x:64055:64055:libvirt-qemu:/var/lib/libvirt:/usr/sbin/nologin' >> "$dir/passwd"
    grep -q '^libvirt-qemu:' "$dir/group" || echo 'libvirt-qemu:x:64055:' >> "$dir/group"
    rm -f "$dir"/drivers/*.so
    ln -s /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so \
        "$dir/drivers/libvirt_driver_qemu.so"
}

start() {
    local dir=$1 ns=$2 port=$3 uuid=$4 mig=$5 reaper=$6
    [ -z "$(running_pid "$dir")" ] || { log "already running in $dir"; exit 1; }
    mkdir -p "$dir"/{etc/qemu,lib,cache,log,sock,drivers}
    chmod 0700 "$dir/sock"
    write_config "$dir" "$port" "$uuid" "$mig"
    # The bind mounts need their mount points on the host; the ones made
    # here are recorded beside the pair's directories (DIR's parent), so
    # whichever instance stops last removes them.
    for d in /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt; do
        if [ ! -d "$d" ]; then
            mkdir -p "$d"
            echo "$d" >> "$(dirname "$dir")/created-mountpoints"
        fi
    done
    rm -f "$dir/libvirtd.pid"
    ip netns exec "$ns" setsid unshare --mount --propagation private -- /bin/sh -ec '
        S="$1"; REAPER="$2"
        mount --bind "$S/passwd" /etc/passwd
        mount --bind "$S/group" /etc/group
        mount --bind "$S/etc" /etc/libvirt
        mount --bind "$S/lib" /var/lib/libvirt
        mount --bind "$S/cache" /var/cache/libvirt
        mount --bind "$S/log" /var/log/libvirt
        mount -t tmpfs -o mode=0755,size=256m lvpair-run /run/libvirt
        umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup 2>/dev/null || true
        mount -t tmpfs -o mode=0755,size=1m lvpair-nocgroup /sys/fs/cgroup
        exec /usr/bin/python3 -I -S "$REAPER" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 LIBVIRT_DRIVER_DIR="$S/drivers" \
            /usr/sbin/libvirtd --listen --config "$S/libvirtd.conf" --pid-file "$S/libvirtd.pid"
    ' lvpair "$dir" "$reaper" > "$dir/log/libvirtd.stdout" 2>&1 < /dev/null &
    local launcher=$!
    echo "$launcher" > "$dir/launcher.pid"
    local uri="qemu+unix:///system?socket=$dir/sock/libvirt-sock"
    for _ in $(seq 1 300); do
        if [ -n "$(running_pid "$dir")" ] && virsh -q -c "$uri" version >/dev/null 2>&1; then
            echo "$uri"
            return 0
        fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    log "libvirtd in $dir did not come up:"
    tail -20 "$dir/log/libvirtd.stdout" "$dir/log/libvirtd.log" >&2 2>/dev/null || true
    stop "$dir"
    exit 1
}

stop() {
    local dir=$1 pid ns launcher
    pid="$(running_pid "$dir")"
    launcher="$(cat "$dir/launcher.pid" 2>/dev/null || true)"
    ns=""
    [ -n "$pid" ] && ns="$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)"
    [ -z "$ns" ] && [ -n "$launcher" ] && ns="$(readlink "/proc/$launcher/ns/mnt" 2>/dev/null || true)"
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # What is left in its mount namespace (QEMUs, the reaper) goes too;
    # the namespace is never the host's: it was made by unshare above.
    if [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/1/ns/mnt)" ] && [ "$ns" != "$(readlink /proc/$$/ns/mnt)" ]; then
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
        done
    fi
    rm -f "$dir/libvirtd.pid"
    # Mount points this script made go once no libvirtd at all is left
    # (another one may be using them in its own namespace).
    local made
    made="$(dirname "$dir")/created-mountpoints"
    if [ -f "$made" ] && ! pgrep -x libvirtd >/dev/null; then
        while read -r d; do rmdir "$d" 2>/dev/null || true; done < "$made"
        rm -f "$made"
    fi
}

case "${1:-}" in
    start) shift; [ $# = 6 ] || { log "usage: start DIR NS PORT HOST_UUID MIGPORT REAPER"; exit 2; }; start "$@" ;;
    stop) shift; [ $# = 1 ] || { log "usage: stop DIR"; exit 2; }; stop "$1" ;;
    *) log "usage: $0 start DIR NS PORT HOST_UUID MIGPORT REAPER | stop DIR"; exit 2 ;;
esac
