//! One command on a line-oriented control socket: qemu-sim's
//! `-sim-control PATH` (and any injector that speaks the same way: a line
//! in, a line out).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::Error;

/// Sends `command` and returns the answer line, trimmed. `timeout` bounds
/// the connect, the write and the read each.
pub fn send(path: &Path, command: &str, timeout: Duration) -> Result<String, Error> {
    let what = || format!("control socket {} ({command})", path.display());
    let stream = UnixStream::connect(path).map_err(Error::io(what()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(Error::io(what()))?;
    (&stream)
        .write_all(format!("{command}\n").as_bytes())
        .map_err(Error::io(what()))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(Error::io(what()))?;
    Ok(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn one_line_in_one_line_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (&stream)
                .write_all(format!("ok {}", line.trim()).as_bytes())
                .unwrap();
        });
        assert_eq!(
            send(&path, "ping", Duration::from_secs(10)).unwrap(),
            "ok ping"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_silent_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl");
        let _listener = UnixListener::bind(&path).unwrap();
        let err = send(&path, "ping", Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
