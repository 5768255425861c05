//! The emulated TPM: a `swtpm` process per running domain, listening on a
//! socket in the domain's run directory, its state kept under the daemon's
//! root. swtpm exits by itself when QEMU closes its connection
//! (`--terminate`), so it never outlives the guest it serves; a swtpm whose
//! QEMU never connected is stopped by [`stop`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::{TpmDef, TpmVersion};

use crate::{Error, Result};

pub(crate) const SWTPM: &str = "swtpm";
pub(crate) const SWTPM_SETUP: &str = "swtpm_setup";
/// How long manufacturing a TPM or swtpm's start may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Where each file of a domain's swtpm is.
pub(crate) struct SwtpmPaths {
    pub(crate) state: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) pidfile: PathBuf,
    pub(crate) log: PathBuf,
    /// Who the socket is for (QEMU's user and group), when not the
    /// daemon's user.
    pub(crate) socket_owner: Option<(u32, u32)>,
}

/// Whether swtpm is installed (domain capabilities, and a clear error at
/// start otherwise).
pub(crate) fn available() -> bool {
    find(SWTPM).is_some() && find(SWTPM_SETUP).is_some()
}

fn find(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Manufactures the TPM on first use, then starts swtpm and waits for its
/// socket.
pub(crate) async fn start(tpm: &TpmDef, paths: &SwtpmPaths) -> Result<()> {
    if !available() {
        return Err(Error::ConfigUnsupported(
            "a TPM with backend 'emulator' needs swtpm, which is not installed (package swtpm-tools)"
                .into(),
        ));
    }
    std::fs::create_dir_all(&paths.state)
        .map_err(|e| Error::io(format!("cannot create {}", paths.state.display()), e))?;
    let v2 = tpm.version == TpmVersion::V2_0;
    if is_empty(&paths.state) {
        setup(paths, v2).await?;
    }
    let _ = std::fs::remove_file(&paths.socket);
    run(swtpm_args(paths, v2), &paths.log).await?;
    wait_for(&paths.socket).await
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

async fn setup(paths: &SwtpmPaths, v2: bool) -> Result<()> {
    let mut args: Vec<String> = Vec::new();
    if v2 {
        args.push("--tpm2".into());
    }
    args.extend([
        "--tpmstate".into(),
        paths.state.to_string_lossy().into_owned(),
        "--createek".into(),
        "--lock-nvram".into(),
        "--not-overwrite".into(),
    ]);
    let mut cmd = vec![SWTPM_SETUP.to_string()];
    cmd.extend(args);
    run(cmd, &paths.log).await
}

fn swtpm_args(paths: &SwtpmPaths, v2: bool) -> Vec<String> {
    let mut ctrl = format!("type=unixio,path={},mode=0600", paths.socket.display());
    if let Some((uid, gid)) = paths.socket_owner {
        ctrl.push_str(&format!(",uid={uid},gid={gid}"));
    }
    let mut a = vec![
        SWTPM.to_string(),
        "socket".into(),
        "--tpmstate".into(),
        format!("dir={},mode=0600", paths.state.display()),
        "--ctrl".into(),
        ctrl,
        "--log".into(),
        format!("file={}", paths.log.display()),
        "--pid".into(),
        format!("file={}", paths.pidfile.display()),
        "--terminate".into(),
        "--daemon".into(),
    ];
    if v2 {
        a.push("--tpm2".into());
    }
    a
}

/// Runs a helper to completion within the deadline; its output goes to the
/// swtpm log, which the error names.
async fn run(argv: Vec<String>, log: &Path) -> Result<()> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("cannot open {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io("cannot duplicate the swtpm log descriptor", e))?;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {}", argv[0]), e))?;
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .map_err(|_| Error::Internal(format!("{} did not finish within {DEADLINE:?}", argv[0])))?
        .map_err(|e| Error::io(format!("cannot wait for {}", argv[0]), e))?;
    if !status.success() {
        return Err(Error::Internal(format!(
            "{} failed ({status}); see {}",
            argv[0],
            log.display()
        )));
    }
    Ok(())
}

/// Polls for the socket swtpm creates once it listens.
async fn wait_for(socket: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if socket.exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::Internal(format!(
        "swtpm did not create {} within {DEADLINE:?}",
        socket.display()
    )))
}

/// Stops the domain's swtpm if it still runs (its QEMU never connected,
/// or is being torn down): the pid file names it, and its command line
/// must name our socket, so a recycled pid is never signalled.
pub(crate) fn stop(paths: &SwtpmPaths) {
    let Ok(text) = std::fs::read_to_string(&paths.pidfile) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(&*paths.socket.to_string_lossy());
    if pid > 1 && ours {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(&paths.pidfile);
}
