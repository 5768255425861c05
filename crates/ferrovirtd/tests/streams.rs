//! Streams and descriptor passing end to end: `virsh vol-upload` and
//! `vol-download` of a 1 GiB sparse image (checksum, sparse layout, the
//! daemon's memory during it), a downloading client that stops reading
//! (held at the bound, cut by keepalive), an upload broken off by a killed
//! daemon, `virsh screenshot` of real QEMU's display, and libvirt-python's
//! `openGraphicsFD` / `openGraphics` reaching QEMU's VNC server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Daemon, tail};
use rpc::header::{Header, MessageStatus, MessageType};
use rpc::protocol::remote::{self, NonnullStorageVol, StorageVolTransferArgs, procedure as p};
use testkit::wait;

const MIB: u64 = 1 << 20;
/// What the daemon may grow by while it moves a GiB: the stream shares
/// (1 MiB each way), a chunk per pump, the read buffer, and the
/// allocator's slack; far below the data moved.
const RSS_BOUND_KIB: u64 = 32 * 1024;

/// The daemon's RSS, sampled every 10 ms until dropped: (baseline, peak).
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    baseline: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let baseline = testkit::procfs::rss_kib(pid).expect("daemon runs");
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(baseline));
        let (s, pk) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = testkit::procfs::rss_kib(pid) {
                    pk.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler {
            stop,
            peak,
            baseline,
            thread: Some(thread),
        }
    }

    /// Stops sampling; prints and returns the growth in KiB.
    fn finish(mut self, what: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let peak = self.peak.load(Ordering::Relaxed);
        let grew = peak.saturating_sub(self.baseline);
        println!(
            "{what}: daemon RSS {} KiB before, peak {peak} KiB (+{grew} KiB)",
            self.baseline
        );
        grew
    }
}

/// A 1 GiB sparse file with random data at a few offsets.
fn sparse_image(path: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(1 << 30).unwrap();
    let mut data = vec![0u8; 4 * MIB as usize];
    let mut x: u32 = 0x1234_5678;
    for (i, b) in data.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> (i % 24)) as u8 | 1;
    }
    for off in [0u64, 100, 517, 1020] {
        f.write_all_at(&data, off * MIB).unwrap();
    }
    f.sync_all().unwrap();
}

/// Data extents of a file (SEEK_DATA / SEEK_HOLE).
fn extents(path: &Path) -> Vec<(i64, i64)> {
    use nix::unistd::{Whence, lseek};
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len() as i64;
    let (mut pos, mut out) = (0, Vec::new());
    while pos < size {
        let Ok(d) = lseek(f.as_raw_fd(), pos, Whence::SeekData) else {
            break;
        };
        let h = lseek(f.as_raw_fd(), d, Whence::SeekHole).unwrap();
        out.push((d, h));
        pos = h;
    }
    out
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn pool_dir(d: &Daemon) -> PathBuf {
    d.root.path().join("images")
}

#[test]
fn vol_upload_and_download_of_a_1_gib_sparse_image_round_trip_in_bounded_memory() {
    let d = Daemon::start();
    let src = d.root.path().join("src.img");
    sparse_image(&src);
    let src_sum = sha256(&src);
    let s = src.to_string_lossy().into_owned();
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "sparse.img",
        "1G",
        "--allocation",
        "0",
    ]);

    let rss = RssSampler::start(d.pid());
    d.virsh_ok(&[
        "vol-upload",
        "--sparse",
        "--pool",
        "default",
        "sparse.img",
        &s,
    ]);
    let back = d.root.path().join("back.img");
    let b = back.to_string_lossy().into_owned();
    d.virsh_ok(&[
        "vol-download",
        "--sparse",
        "--pool",
        "default",
        "sparse.img",
        &b,
    ]);
    let grew = rss.finish("sparse upload + download of 1 GiB (16 MiB of data)");
    let vol = pool_dir(&d).join("sparse.img");
    assert_eq!(sha256(&vol), src_sum);
    assert_eq!(sha256(&back), src_sum);
    assert_eq!(extents(&vol), extents(&src), "holes kept in the volume");
    assert_eq!(extents(&back), extents(&src), "holes kept in the download");
    assert!(grew <= RSS_BOUND_KIB, "daemon grew {grew} KiB");
    std::fs::remove_file(&back).unwrap();

    // Without --sparse the whole GiB travels as data, both ways.
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "full.img",
        "1G",
        "--allocation",
        "0",
    ]);
    let rss = RssSampler::start(d.pid());
    let t = std::time::Instant::now();
    d.virsh_ok(&["vol-upload", "--pool", "default", "full.img", &s]);
    println!("1 GiB vol-upload: {:.2} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    d.virsh_ok(&["vol-download", "--pool", "default", "full.img", &b]);
    println!("1 GiB vol-download: {:.2} s", t.elapsed().as_secs_f64());
    let grew = rss.finish("plain upload + download of 1 GiB");
    assert_eq!(sha256(&back), src_sum);
    assert_eq!(sha256(&pool_dir(&d).join("full.img")), src_sum);
    assert!(grew <= RSS_BOUND_KIB, "daemon grew {grew} KiB");
    // The volume was probed again after the upload.
    let info = d.virsh_ok(&["vol-info", "--pool", "default", "full.img"]);
    assert!(info.contains("1.00 GiB"), "{info}");
}

/// A STREAM message of the REMOTE program.
fn stream_frame(proc_: i32, serial: u32, status: MessageStatus, body: &[u8]) -> Vec<u8> {
    let h = Header::new(
        remote::PROGRAM,
        remote::VERSION,
        proc_,
        MessageType::Stream,
        serial,
        status,
    );
    rpc::frame::encode_frame(&h, body, rpc::frame::MESSAGE_MAX)
        .unwrap()
        .to_vec()
}

fn transfer_args(d: &Daemon, name: &str) -> Vec<u8> {
    let key = d.virsh_ok(&["vol-key", "--pool", "default", name]);
    rpc::xdr::to_bytes(&StorageVolTransferArgs {
        vol: NonnullStorageVol {
            pool: "default".into(),
            name: name.into(),
            key: key.trim().into(),
        },
        offset: 0,
        length: 0,
        flags: 0,
    })
    .to_vec()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_downloading_client_that_stops_reading_is_held_at_the_bound_and_cut_by_keepalive() {
    let d = Daemon::start_with("keepalive_interval = 1\nkeepalive_count = 3\n");
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "big.img",
        "1G",
        "--allocation",
        "0",
    ]);
    let args = transfer_args(&d, "big.img");
    let rt = runtime();
    let mut s = rt.block_on(async {
        let mut s = common::raw_open(&d.sock()).await;
        let ka = rpc::xdr::to_bytes(&remote::ConnectSupportsFeatureArgs {
            feature: remote::feature::PROGRAM_KEEPALIVE,
        });
        common::raw_call(&mut s, p::CONNECT_SUPPORTS_FEATURE, 3, &ka).await;
        common::raw_call(&mut s, p::STORAGE_VOL_DOWNLOAD, 4, &args).await;
        s
    });
    // From here on the client reads nothing and answers no PING.
    let rss = RssSampler::start(d.pid());
    let cut = wait::until(Duration::from_secs(60), || {
        d.log().contains("keepalive timeout")
    });
    let grew = rss.finish("a stalled 1 GiB download until keepalive cut it");
    assert!(
        cut,
        "keepalive never cut the client\n{}",
        tail(&d.log(), 30)
    );
    assert!(grew <= RSS_BOUND_KIB, "daemon grew {grew} KiB");
    // What reached the socket is what the bound let through, not the GiB
    // (the last frame cut short where the connection was closed).
    let got = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf.len()
    });
    println!("the stalled client had {got} bytes waiting for it");
    assert!(got > 0 && got < 16 * MIB as usize, "{got} bytes");
    // The download let go of the volume.
    let freed = wait::until(Duration::from_secs(20), || {
        d.virsh(&["vol-delete", "--pool", "default", "big.img"])
            .status
            .success()
    });
    assert!(freed, "the volume stayed busy\n{}", tail(&d.log(), 30));
}

#[test]
fn an_upload_broken_off_by_a_killed_daemon_leaves_the_volume_listed_and_usable() {
    let mut d = Daemon::start();
    d.virsh_ok(&[
        "vol-create-as",
        "default",
        "up.img",
        "8M",
        "--allocation",
        "0",
    ]);
    let args = transfer_args(&d, "up.img");
    let chunk = vec![0x5Au8; 256 * 1024];
    let rt = runtime();
    let _client = rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut s = common::raw_open(&d.sock()).await;
        common::raw_call(&mut s, p::STORAGE_VOL_UPLOAD, 3, &args).await;
        for _ in 0..3 {
            let f = stream_frame(p::STORAGE_VOL_UPLOAD, 3, MessageStatus::Continue, &chunk);
            s.write_all(&f).await.unwrap();
        }
        s
    });
    let vol = pool_dir(&d).join("up.img");
    let written =
        || std::fs::read(&vol).is_ok_and(|b| b[..3 * chunk.len()].iter().all(|x| *x == 0x5A));
    assert!(
        wait::until(Duration::from_secs(20), written),
        "data never reached the volume"
    );
    // While it is written the volume is used by nothing else.
    for args in [
        &["vol-delete", "--pool", "default", "up.img"][..],
        &["vol-wipe", "--pool", "default", "up.img"],
        &["vol-clone", "--pool", "default", "up.img", "copy.img"],
        &["vol-resize", "--pool", "default", "up.img", "16M"],
    ] {
        let out = d.virsh(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("is still in use"),
            "{args:?}: {err}"
        );
    }
    d.kill();
    d.spawn();
    // Listed, its bytes so far in place (as libvirt leaves them), free.
    let list = d.virsh_ok(&["vol-list", "default"]);
    assert!(list.contains("up.img"), "{list}");
    assert!(written());
    assert_eq!(std::fs::metadata(&vol).unwrap().len(), 8 * MIB);
    d.virsh_ok(&["vol-dumpxml", "--pool", "default", "up.img"]);
    d.virsh_ok(&["vol-delete", "--pool", "default", "up.img"]);
}

/// A diskless real-QEMU domain with a VGA card and a VNC server.
fn display_domain(name: &str) -> String {
    common::real_domain_xml(name).replace(
        "</devices>",
        "<graphics type='vnc'/><video><model type='vga'/></video></devices>",
    )
}

#[test]
fn virsh_screenshot_and_graphics_descriptors_reach_real_qemu() {
    let d = Daemon::start();
    let f = d.file("disp.xml", &display_domain("disp"));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", "disp"]);

    let shot = d.root.path().join("shot.png");
    let out = d.virsh_ok(&["screenshot", "disp", &shot.to_string_lossy()]);
    assert!(out.contains("image/png"), "{out}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    println!("screenshot: {width}x{height}, {} bytes", png.len());
    assert!((320..=4096).contains(&width) && (200..=4096).contains(&height));
    // Nothing left behind in the run directory.
    let run = d.root.path().join("run/qemu");
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("screendump"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // libvirt-python: a descriptor from the daemon, and one passed to it,
    // each greeted by QEMU's VNC server.
    let script = format!(
        "import libvirt, socket\n\
         c = libvirt.open('{}')\n\
         dom = c.lookupByName('disp')\n\
         s = socket.socket(fileno=dom.openGraphicsFD(0, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH))\n\
         s.settimeout(20)\n\
         print('fd', s.recv(12))\n\
         a, b = socket.socketpair()\n\
         dom.openGraphics(0, b.fileno(), 0)\n\
         a.settimeout(20)\n\
         print('passed', a.recv(12))\n\
         try:\n    dom.openGraphicsFD(1, 0)\nexcept libvirt.libvirtError as e:\n    print('idx1', e.get_error_code(), e)\n",
        d.uri
    );
    let out = testkit::tools::python3()
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("fd b'RFB 003.008\\n'"), "{text}");
    assert!(text.contains("passed b'RFB 003.008\\n'"), "{text}");
    assert!(
        text.contains("idx1 1 ") && text.contains("No graphics backend with index 1"),
        "{text}"
    );

    // No video device: no screen (libvirt's error).
    let f = d.file("blind.xml", &common::real_domain_xml("blind"));
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", "blind"]);
    let out = d.virsh(&[
        "screenshot",
        "blind",
        &d.root.path().join("b.png").to_string_lossy(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no screens to take screenshot from"),
        "{err}"
    );
    d.virsh_ok(&["destroy", "blind"]);
    d.virsh_ok(&["destroy", "disp"]);
}

/// DOMAIN_OPEN_CONSOLE's arguments for domain `name` (its first console).
fn console_args(d: &Daemon, name: &str) -> Vec<u8> {
    let uuid: uuid::Uuid = d.virsh_ok(&["domuuid", name]).trim().parse().unwrap();
    let id: i32 = d.virsh_ok(&["domid", name]).trim().parse().unwrap();
    rpc::xdr::to_bytes(&remote::DomainOpenChardevArgs {
        dom: remote::NonnullDomain {
            name: name.into(),
            uuid: *uuid.as_bytes(),
            id,
        },
        name: None,
        flags: 0,
    })
    .to_vec()
}

#[test]
fn a_client_flooding_a_console_nobody_reads_is_not_read_and_the_daemon_stays_flat() {
    let d = Daemon::start();
    // Firmware only: nothing in the guest reads the serial port, so once
    // the UART and the pty are full the console takes no more input.
    let xml =
        common::real_domain_xml("flood").replace("</devices>", "<serial type='pty'/></devices>");
    let f = d.file("flood.xml", &xml);
    d.virsh_ok(&["define", &f.to_string_lossy()]);
    d.virsh_ok(&["start", "flood"]);
    let args = console_args(&d, "flood");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let mut s = common::raw_open(&d.sock()).await;
        common::raw_call(&mut s, p::DOMAIN_OPEN_CONSOLE, 3, &args).await;
        s
    });
    let (_rd, mut wr) = s.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let flood = rt.spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = vec![b'x'; 256 * 1024];
        for _ in 0..256 {
            let f = stream_frame(p::DOMAIN_OPEN_CONSOLE, 3, MessageStatus::Continue, &chunk);
            if wr.write_all(&f).await.is_err() {
                break;
            }
            w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let rss = RssSampler::start(d.pid());
    let mut last = u64::MAX;
    let stalled = wait::until(Duration::from_secs(60), || {
        // Sampled twice a second: the flood has stopped when it holds still.
        std::thread::sleep(Duration::from_millis(500));
        let now = written.load(Ordering::Relaxed);
        std::mem::replace(&mut last, now) == now
    });
    let sent = written.load(Ordering::Relaxed);
    println!("the console flood stalled after {sent} bytes");
    assert!(stalled && sent < 16 * MIB, "{sent} bytes went in");
    // Others are served meanwhile.
    d.virsh_ok(&["dominfo", "flood"]);
    let grew = rss.finish("a 64 MiB console flood the guest does not read");
    assert!(grew <= RSS_BOUND_KIB, "daemon grew {grew} KiB");
    // The flooding client goes: its session ends and the console opens again.
    flood.abort();
    drop(_rd);
    let reopened = wait::until(Duration::from_secs(20), || {
        rt.block_on(async {
            let mut s = common::raw_open(&d.sock()).await;
            use tokio::io::AsyncWriteExt;
            s.write_all(&common::call_frame(p::DOMAIN_OPEN_CONSOLE, 3, &args))
                .await
                .unwrap();
            matches!(common::read_frame(&mut s).await, Ok(Some((h, _))) if h.status == 0)
        })
    });
    assert!(
        reopened,
        "the console stayed claimed\n{}",
        tail(&d.log(), 30)
    );
    d.virsh_ok(&["destroy", "flood"]);
}
