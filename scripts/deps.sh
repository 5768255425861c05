# Sourced by scripts/run.sh and .ci/run: the Debian packages ferrovirt and its
# tests need, one `apt-get install` for all of them, and a check that every
# tool is really there afterwards.
#
# Debian 12 ships QEMU 7.2. A machine may already carry a newer qemu-utils
# (from bookworm-backports) whose source is no longer configured: apt then
# refuses QEMU 7.2 beside it ("qemu-utils : Breaks: qemu-system-common"). So
# qemu-utils is always asked for from bookworm, together with QEMU, with
# --allow-downgrades: one install that apt can resolve on both kinds of
# machine.

# Every package, by what needs it.
FERROVIRT_PACKAGES=(
  # the emulator and its tools; qemu-utils pinned to QEMU's own release
  qemu-system-x86 qemu-utils/bookworm
  # real libvirt clients the tests drive ferrovirtd with
  libvirt-clients python3-libvirt virtinst
  # the tiny test guest (guest/build.sh)
  busybox-static cpio linux-image-amd64
  # UEFI firmware and its descriptors (domain capabilities, firmware='efi')
  ovmf
  # the emulated TPM (<tpm><backend type='emulator'>) and its state setup
  swtpm swtpm-tools
  # virtual networks: dnsmasq, nftables, ip
  dnsmasq-base nftables iproute2
  # the Prometheus exporter tested against the daemon, curl, and the
  # exposition-format parser that checks the daemon's metrics endpoint
  prometheus-libvirt-exporter curl python3-prometheus-client
  # certificates for the TLS listener's tests
  openssl
)

# Tools that must exist after the install (command names or absolute paths).
FERROVIRT_TOOLS=(
  qemu-system-x86_64 qemu-img virsh virt-install virt-xml busybox cpio
  dnsmasq nft ip curl prometheus-libvirt-exporter openssl swtpm swtpm_setup
)

# Installed when a package is missing, or when qemu-utils does not come from
# the same QEMU release as qemu-system-x86.
ferrovirt_install_packages() {
  local missing=() p name
  for p in "${FERROVIRT_PACKAGES[@]}"; do
    name="${p%%/*}"
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' || missing+=("$name")
  done
  local sys utils
  sys="$(dpkg-query -W -f='${Version}' qemu-system-common 2>/dev/null || true)"
  utils="$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)"
  if [ ${#missing[@]} -eq 0 ] && [ -n "$sys" ] && [ "$sys" = "$utils" ]; then
    return 0
  fi
  echo "installing packages (missing: ${missing[*]:-none}; qemu-system ${sys:-none}, qemu-utils ${utils:-none})"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    --allow-downgrades "${FERROVIRT_PACKAGES[@]}"
}

# Stops with a message naming every tool that is still missing.
ferrovirt_check_tools() {
  local missing=() t
  for t in "${FERROVIRT_TOOLS[@]}"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  /usr/bin/python3 -c 'import libvirt' 2>/dev/null || missing+=("python3-libvirt (/usr/bin/python3 cannot import libvirt)")
  /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || missing+=("python3-prometheus-client (/usr/bin/python3 cannot import prometheus_client)")
  compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=("a kernel in /boot (linux-image-amd64)")
  [ -r /usr/share/OVMF/OVMF_CODE.fd ] || [ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=("OVMF firmware (ovmf)")
  local sys utils
  sys="$(dpkg-query -W -f='${Version}' qemu-system-common 2>/dev/null || true)"
  utils="$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)"
  [ "$sys" = "$utils" ] || missing+=("qemu-utils $utils does not match QEMU $sys")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing after install:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
}

# The account QEMU runs as by default when ferrovirtd runs as root (README,
# "Confinement"; the daemon refuses to start without it unless its config
# says user = "root"), and so in the tests: a system account with no home
# and no login shell, in the kvm group so that it can open /dev/kvm.
# Created when missing.
FERROVIRT_QEMU_USER=ferrovirt-qemu
ferrovirt_create_account() {
  getent passwd "$FERROVIRT_QEMU_USER" >/dev/null && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  getent group kvm >/dev/null || $sudo groupadd --system kvm
  echo "creating the system account $FERROVIRT_QEMU_USER"
  $sudo useradd --system --user-group --groups kvm --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin "$FERROVIRT_QEMU_USER"
}
