//! Running a helper binary (`nft`, `tc`, the first stage of `dnsmasq`) as a
//! supervised child: input on stdin, a deadline after which it is killed,
//! and output kept in a bounded buffer. Dropping the future kills it too.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::{Error, Result};

/// Most bytes of a helper's output kept (the tail of stderr for errors,
/// the head of stdout for listings the driver parses).
pub(crate) const OUTPUT_KEEP: usize = 1 << 20;

/// What a helper printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub stdout: String,
    pub success: bool,
    /// The end of its error output (or of stdout when stderr is empty).
    pub message: String,
}

/// Runs `bin ARGS` with `input` on stdin; kills it after `deadline`.
pub(crate) async fn run(
    bin: &Path,
    args: &[&str],
    input: Option<&str>,
    deadline: Duration,
) -> Result<Output> {
    let what = format!(
        "{} {}",
        bin.display(),
        args.first().copied().unwrap_or_default()
    );
    let mut child = Command::new(bin)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {}", bin.display()), e))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Helper(format!("{what}: no output pipes")));
    };
    let stdin = child.stdin.take();
    let text = input.map(str::to_owned);
    let feed = async move {
        if let (Some(mut s), Some(t)) = (stdin, text) {
            // A helper that exits early closes the pipe; its exit status
            // tells what went wrong.
            let _ = s.write_all(t.as_bytes()).await;
        }
    };
    let work = async {
        let ((), stdout, stderr, status) =
            tokio::join!(feed, read_bounded(out), read_bounded(err), child.wait());
        (stdout, stderr, status)
    };
    let (stdout, stderr, status) = tokio::time::timeout(deadline, work).await.map_err(|_| {
        Error::Helper(format!(
            "{what} did not finish within {deadline:?} and was killed"
        ))
    })?;
    let status = status.map_err(|e| Error::io(format!("cannot wait for {what}"), e))?;
    let message = if stderr.trim().is_empty() {
        stdout.clone()
    } else {
        stderr
    };
    Ok(Output {
        stdout,
        success: status.success(),
        message: message.trim().to_owned(),
    })
}

/// Like [`run`], but a failure is an error carrying the helper's message.
pub(crate) async fn run_ok(
    bin: &Path,
    args: &[&str],
    input: Option<&str>,
    deadline: Duration,
) -> Result<String> {
    let out = run(bin, args, input, deadline).await?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(Error::Helper(format!(
            "{} {} failed: {}",
            bin.display(),
            args.join(" "),
            out.message
        )))
    }
}

/// Reads a stream to its end, keeping at most [`OUTPUT_KEEP`] bytes.
async fn read_bounded(mut s: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_KEEP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn deadline_kills_a_hung_helper() {
        let t = Instant::now();
        let e = run(
            Path::new("/bin/sleep"),
            &["30"],
            None,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("was killed"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn input_output_and_failure() {
        let out = run_ok(
            Path::new("/bin/cat"),
            &[],
            Some("hello"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(out, "hello");
        let e = run_ok(
            Path::new("/bin/sh"),
            &["-c", "echo broken >&2; exit 3"],
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("broken"), "{e}");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let out = run(
            Path::new("/bin/sh"),
            &["-c", "head -c 3000000 /dev/zero"],
            None,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(out.success);
        assert_eq!(out.stdout.len(), OUTPUT_KEEP);
    }
}
