//! Whether KVM really runs guests on this host, not just whether
//! `/dev/kvm` opens: probed once, lazily, by booting a one-sector guest
//! under KVM and, for comparison, under TCG.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long the TCG run of the probe guest may take. It takes well under
/// a second even on a loaded host.
const TCG_PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// The KVM run may take this long at least, whatever TCG took: a working
/// KVM boots the probe (firmware included) in a few hundred milliseconds.
const KVM_PROBE_FLOOR: Duration = Duration::from_secs(1);

/// What the probe guest writes to QEMU's `isa-debug-exit` port; QEMU then
/// exits with status `(value << 1) | 1`.
const PROBE_EXIT_VALUE: u8 = 0x2a;

/// A boot sector that writes [`PROBE_EXIT_VALUE`] to port 0x501
/// (`isa-debug-exit`) and halts: `mov dx,0x501; mov al,0x2a; out dx,al;
/// hlt; jmp $`, then the 0x55AA signature.
#[rustfmt::skip]
fn probe_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    let code = [0xba, 0x01, 0x05, 0xb0, PROBE_EXIT_VALUE, 0xee, 0xf4, 0xeb, 0xfe];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Whether this host runs KVM guests in useful time: `/dev/kvm` opens
/// read-write *and* the probe guest, booted by the real firmware under KVM,
/// reaches its exit port no slower than twice what TCG takes for it (and
/// within [`KVM_PROBE_FLOOR`] in any case). Opening `/dev/kvm` alone is not
/// enough: some hosts (nested virtualisation without the features guests
/// need) accept the ioctls but run guests many times slower than TCG, or
/// not at all. Comparing with TCG on the same host keeps the answer the
/// same on a loaded machine, where both slow down.
pub async fn kvm_works(emulator: &Path, dir: &Path) -> bool {
    if !dev_kvm_opens() {
        return false;
    }
    let image = dir.join(format!("kvm-probe-{}.img", std::process::id()));
    if let Err(e) = std::fs::write(&image, probe_sector()) {
        tracing::warn!(error = %e, path = %image.display(), "cannot write the KVM probe image");
        return false;
    }
    let works = match run_probe(emulator, &image, "tcg", TCG_PROBE_DEADLINE).await {
        Some(tcg) => {
            let deadline = (tcg * 2).max(KVM_PROBE_FLOOR);
            let kvm = run_probe(emulator, &image, "kvm", deadline).await;
            tracing::info!(?tcg, ?kvm, "KVM probe");
            kvm.is_some()
        }
        None => false,
    };
    let _ = std::fs::remove_file(&image);
    if !works {
        tracing::info!("KVM is not usable on this host in useful time: domains run under TCG");
    }
    works
}

/// Boots the probe image under `accel`; how long it took, or `None` if it
/// did not reach its exit port within `deadline`.
async fn run_probe(
    emulator: &Path,
    image: &Path,
    accel: &str,
    deadline: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(emulator)
        .args(["-machine", &format!("pc,accel={accel}"), "-display", "none"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-device",
            "isa-debug-exit",
            "-drive",
        ])
        .arg(format!("file={},format=raw,if=ide", image.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    match tokio::time::timeout(deadline, child.wait()).await {
        Ok(Ok(status)) if status.code() == Some(i32::from(PROBE_EXIT_VALUE) << 1 | 1) => {
            Some(started.elapsed())
        }
        Ok(_) => None,
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// Whether /dev/kvm opens read-write.
fn dev_kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
