//! The few `qemu-img` calls block jobs need: the backing chain of an image
//! (to know what a commit merges into) and creating a copy destination.
//!
//! `qemu-img` runs as a child process with `-U` (force share) because the
//! running QEMU holds the image locks; it only reads metadata. Each run
//! has a deadline ([`DEADLINE`]): metadata work that takes longer means
//! the storage under it hangs, and the job fails instead of waiting on it.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::{Error, Result};

/// How long one metadata-only run may take before it is killed.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// One image of a backing chain, top first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    pub(crate) file: PathBuf,
    pub(crate) format: String,
    pub(crate) virtual_size: u64,
}

/// The chain of `top` as `qemu-img info --backing-chain` reports it.
pub(crate) async fn chain(top: &Path) -> Result<Vec<Layer>> {
    let out = run(Command::new("qemu-img")
        .args(["info", "-U", "--backing-chain", "--output=json"])
        .arg(top))
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::Internal(format!("bad qemu-img info output: {e}")))?;
    let list = match v {
        serde_json::Value::Array(a) => a,
        single => vec![single],
    };
    Ok(list
        .iter()
        .filter_map(|l| {
            Some(Layer {
                file: PathBuf::from(l.get("filename")?.as_str()?),
                format: l.get("format")?.as_str()?.to_owned(),
                virtual_size: l.get("virtual-size")?.as_u64()?,
            })
        })
        .collect())
}

/// Creates a copy destination: standalone of `size`, or (shallow) a qcow2
/// overlay whose backing is `backing`, like libvirt does for a non-reused
/// destination.
pub(crate) async fn create(
    dest: &Path,
    format: &str,
    size: u64,
    backing: Option<&Layer>,
) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", format]);
    if let Some(b) = backing {
        cmd.arg("-b").arg(&b.file).args(["-F", &b.format]);
    }
    cmd.arg(dest).arg(size.to_string());
    run(&mut cmd).await.map(|_| ())
}

async fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    // Dropping the output future at the deadline kills the child.
    let out = tokio::time::timeout(DEADLINE, cmd.kill_on_drop(true).output())
        .await
        .map_err(|_| Error::Qemu(format!("qemu-img did not finish within {DEADLINE:?}")))?
        .map_err(|e| Error::io("cannot run qemu-img", e))?;
    if !out.status.success() {
        return Err(Error::Qemu(format!(
            "qemu-img failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
