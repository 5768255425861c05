#!/usr/bin/env bash
# Installs what is missing, builds ferrovirtd, starts it on its embedded
# defaults with a demo domain defined, and prints the virsh line to use.
#
#   ./scripts/run.sh          start (or find running) and print the URI
#   ./scripts/run.sh stop     stop the daemon (QEMUs keep running)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then root_dir=/var/lib/ferrovirt; else root_dir="${XDG_DATA_HOME:-$HOME/.local/share}/ferrovirt"; fi
root_dir="${FERROVIRT_ROOT:-$root_dir}"
sock="$root_dir/run/libvirt-sock"
uri="qemu+unix:///system?socket=$sock"
pidfile="$root_dir/ferrovirtd.pid"

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$pidfile")" && echo "ferrovirtd stopped (QEMU processes keep running)"
  else
    echo "ferrovirtd is not running"
  fi
  exit 0
fi

# shellcheck source=deps.sh
. scripts/deps.sh
ferrovirt_install_packages
ferrovirt_check_tools
ferrovirt_create_account

cargo build --release --bins
mkdir -p "$root_dir"

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "ferrovirtd already running (pid $(cat "$pidfile"))"
else
  # The default network is defined but not started: this script leaves the
  # host's networking alone (virsh net-start default starts it).
  config="$root_dir/ferrovirtd.toml"
  [ -f "$config" ] || printf 'network_autostart = false\n' >"$config"
  nohup ./target/release/ferrovirtd --root "$root_dir" --config "$config" >>"$root_dir/ferrovirtd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    [ -S "$sock" ] && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "ferrovirtd failed to start; see $root_dir/ferrovirtd.log" >&2; tail -20 "$root_dir/ferrovirtd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "ferrovirtd started (pid $(cat "$pidfile")), state under $root_dir"
fi

if ! virsh -c "$uri" dominfo demo >/dev/null 2>&1; then
  # KVM only where the daemon's probe saw it run a guest; TCG otherwise.
  virt=qemu
  virsh -c "$uri" capabilities 2>/dev/null | grep -q "<domain type='kvm'" && virt=kvm
  demo_xml="$root_dir/demo.xml"
  if [ -x guest/build.sh ] && guest/build.sh >/dev/null 2>&1 && [ -f guest/build/vmlinuz ]; then
    here="$(pwd)"
    cat >"$demo_xml" <<XML
<domain type='$virt'>
  <name>demo</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$here/guest/build/vmlinuz</kernel>
    <initrd>$here/guest/build/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$root_dir/demo-serial.log'/><target port='0'/></serial>
  </devices>
</domain>
XML
  else
    cat >"$demo_xml" <<XML
<domain type='$virt'>
  <name>demo</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>
XML
  fi
  virsh -c "$uri" define "$demo_xml"
fi

echo
echo "Use it with:"
echo "  virsh -c '$uri' list --all"
echo "  virsh -c '$uri' start demo"
