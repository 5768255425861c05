#!/usr/bin/env bash
# Regenerates the vi-*.xml golden inputs: what the real virt-install writes
# (`--print-xml`) against a running ferrovirtd, for each OS variant on q35
# and i440fx. Needs the daemon's root directory (its sockets are under
# ROOT/run); the disk images virt-install creates in the daemon's default
# pool are removed again. Afterwards run the golden test with
# UPDATE_GOLDEN=1 and review the diff.
#
#   crates/domain/tests/golden/virt-install.sh /tmp/fv
set -euo pipefail
root=${1:?usage: virt-install.sh DAEMON_ROOT}
here=$(cd "$(dirname "$0")" && pwd)
sock="$root/run/libvirt-sock"
# An unprivileged (session) connection gets user-mode networking from
# virt-install; the system one its 'default' network.
session="qemu+unix:///session?socket=$sock"
system="qemu+unix:///system?socket=$sock"

gen() {
    local name=$1 uri=$2
    shift 2
    virt-install --connect "$uri" --print-xml --noautoconsole --name "$name" \
        --disk size=1 "$@" |
        sed -e "s#$root/images/#/var/lib/ferrovirt/images/#g" >"$here/vi-$name.xml"
    virsh -c "$uri" vol-delete --pool default "$name.qcow2" >/dev/null
}

for machine in q35 pc; do
    gen "debian11-$machine" "$session" --osinfo debian11 --machine "$machine" --graphics none
    gen "fedora37-$machine" "$session" --osinfo fedora37 --machine "$machine" --graphics spice
    gen "ubuntu2204-$machine" "$session" --osinfo ubuntu22.04 --machine "$machine" --graphics vnc
    gen "alpine-$machine" "$session" --osinfo alpinelinux3.17 --machine "$machine" --graphics none
    gen "generic-$machine" "$session" --osinfo generic --memory 1024 --machine "$machine" --graphics vnc
    gen "win10-$machine" "$session" --osinfo win10 --machine "$machine" --graphics vnc
    gen "win11-$machine" "$session" --osinfo win11 --machine "$machine" --graphics vnc
done
gen "secureboot-q35" "$session" --osinfo fedora37 --machine q35 --graphics none \
    --boot uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=yes
gen "network-q35" "$system" --osinfo debian11 --machine q35 --graphics none
