//! Whether KVM really runs guests on this host, not just whether
//! `/dev/kvm` opens: probed once, lazily, by booting a one-sector guest.

use std::path::Path;
use std::time::Duration;

/// How long the KVM probe guest may take. A working KVM runs it in a few
/// hundred milliseconds (firmware included); a KVM that cannot run guests in
/// useful time takes many seconds or never finishes.
pub(crate) const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// What the probe guest writes to QEMU's `isa-debug-exit` port; QEMU then
/// exits with status `(value << 1) | 1`.
const PROBE_EXIT_VALUE: u8 = 0x2a;

/// A boot sector that writes [`PROBE_EXIT_VALUE`] to port 0x501
/// (`isa-debug-exit`) and halts: `mov dx,0x501; mov al,0x2a; out dx,al;
/// hlt; jmp $`, then the 0x55AA signature.
fn probe_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    let code = [
        0xba,
        0x01,
        0x05,
        0xb0,
        PROBE_EXIT_VALUE,
        0xee,
        0xf4,
        0xeb,
        0xfe,
    ];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Whether this host runs KVM guests in useful time: `/dev/kvm` opens
/// read-write *and* a one-sector guest, booted by the real firmware under
/// KVM, reaches its exit port within `deadline`. Opening `/dev/kvm` alone
/// is not enough: some hosts (nested virtualisation without the features
/// the guest needs) accept the ioctls but run guests thousands of times
/// slower than TCG, or not at all.
pub async fn kvm_works(emulator: &Path, dir: &Path, deadline: Duration) -> bool {
    if !dev_kvm_opens() {
        return false;
    }
    let image = dir.join(format!("kvm-probe-{}.img", std::process::id()));
    if let Err(e) = std::fs::write(&image, probe_sector()) {
        tracing::warn!(error = %e, path = %image.display(), "cannot write the KVM probe image");
        return false;
    }
    let child = tokio::process::Command::new(emulator)
        .args([
            "-machine",
            "pc,accel=kvm",
            "-display",
            "none",
            "-nodefaults",
        ])
        .args(["-no-user-config", "-device", "isa-debug-exit", "-drive"])
        .arg(format!("file={},format=raw,if=ide", image.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let works = match child {
        Ok(mut child) => match tokio::time::timeout(deadline, child.wait()).await {
            Ok(Ok(status)) => status.code() == Some(i32::from(PROBE_EXIT_VALUE) << 1 | 1),
            Ok(Err(_)) | Err(_) => {
                let _ = child.kill().await;
                false
            }
        },
        Err(_) => false,
    };
    let _ = std::fs::remove_file(&image);
    if !works {
        tracing::info!("KVM is not usable on this host in useful time: domains run under TCG");
    }
    works
}

/// Whether /dev/kvm opens read-write.
fn dev_kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
