//! Volume upload and download against real files: byte-exact round trips
//! with holes, libvirt's length rule, and the lock rules of a volume
//! being written or read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use storage::{
    CreateOptions, Piece, Pool, StorageConfig, StorageDriver, TransferRange, VolumeUsers,
    WipeAlgorithm,
};
use virterror::{ErrorCode, ToVirError};

const MIB: u64 = 1 << 20;

fn code<T>(r: storage::Result<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_vir_error().code,
    }
}

async fn pool_with(root: &Path, name: &str, cap_mib: u64) -> (StorageDriver, Arc<Pool>) {
    let drv = StorageDriver::open(StorageConfig::new(root)).await.unwrap();
    let pool = drv.lookup_by_name("default").unwrap();
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='M'>{cap_mib}</capacity>\
         <allocation>0</allocation></volume>"
    );
    drv.create_volume(&pool, &xml, CreateOptions::default())
        .await
        .unwrap();
    (drv, pool)
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// Where the file has data: (start, end) pairs from SEEK_DATA/SEEK_HOLE.
fn data_extents(path: &Path) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len() as i64;
    let mut out = Vec::new();
    let mut pos = 0i64;
    while pos < size {
        let Ok(d) = lseek(f.as_raw_fd(), pos, Whence::SeekData) else {
            break;
        };
        let h = lseek(f.as_raw_fd(), d, Whence::SeekHole).unwrap();
        out.push((d as u64, h as u64));
        pos = h;
    }
    out
}

/// Downloads `name` whole and returns (bytes, holes seen).
async fn download_all(
    drv: &StorageDriver,
    pool: &Arc<Pool>,
    name: &str,
    sparse: bool,
) -> (Vec<u8>, Vec<(u64, u64)>) {
    let range = TransferRange {
        sparse,
        ..TransferRange::default()
    };
    let mut d = drv.download(pool, name, range).await.unwrap();
    let mut out = Vec::new();
    let mut holes = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match d.next(&mut buf).unwrap() {
            Piece::Data(n) => out.extend_from_slice(&buf[..n]),
            Piece::Hole(len) => {
                holes.push((out.len() as u64, len));
                out.resize(out.len() + len as usize, 0);
            }
            Piece::End => return (out, holes),
        }
    }
}

#[tokio::test]
async fn a_sparse_upload_round_trips_with_its_holes() {
    let root = tempfile::tempdir().unwrap();
    let (drv, pool) = pool_with(root.path(), "disk.img", 16).await;
    let a = pattern(1, MIB as usize);
    let b = pattern(7, 3 * 100_000);
    let mut up = drv
        .upload(
            &pool,
            "disk.img",
            TransferRange {
                sparse: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    up.write(&a).unwrap();
    up.hole(10 * MIB).unwrap();
    up.write(&b).unwrap();
    // A trailing hole past the old end extends the volume.
    up.hole(20 * MIB).unwrap();
    let end = up.position();
    up.finish().unwrap();

    let path = root.path().join("images/disk.img");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    let vol = pool.volume("disk.img").unwrap();
    assert_eq!(vol.facts.capacity, end, "the volume was probed again");
    // Only the two data runs are allocated (extents are block-aligned).
    let ext = data_extents(&path);
    assert_eq!(ext.len(), 2, "{ext:?}");
    assert!(
        ext[0].0 == 0 && ext[0].1 >= MIB && ext[0].1 < 2 * MIB,
        "{ext:?}"
    );

    let (bytes, holes) = download_all(&drv, &pool, "disk.img", true).await;
    assert_eq!(bytes.len() as u64, end);
    assert_eq!(&bytes[..a.len()], &a[..]);
    let b_at = (11 * MIB) as usize;
    assert_eq!(&bytes[b_at..b_at + b.len()], &b[..]);
    assert!(bytes[a.len()..b_at].iter().all(|x| *x == 0));
    assert_eq!(holes.len(), 2, "{holes:?}");
    assert!(
        holes.iter().map(|h| h.1).sum::<u64>() >= 29 * MIB,
        "{holes:?}"
    );
    // The same volume without holes: identical bytes.
    let (plain, none) = download_all(&drv, &pool, "disk.img", false).await;
    assert!(none.is_empty());
    assert_eq!(plain, bytes);
}

#[tokio::test]
async fn a_hole_zeroes_what_was_there_and_offsets_and_lengths_are_honoured() {
    let root = tempfile::tempdir().unwrap();
    let (drv, pool) = pool_with(root.path(), "v.img", 4).await;
    let path = root.path().join("images/v.img");
    std::fs::write(&path, vec![0xAAu8; 4 * MIB as usize]).unwrap();
    let range = TransferRange {
        offset: MIB,
        length: MIB,
        sparse: true,
    };
    let mut up = drv.upload(&pool, "v.img", range).await.unwrap();
    up.write(&[1u8; 1000]).unwrap();
    up.hole(1000).unwrap();
    // The rest of the length fits; past it, libvirt's "no space".
    up.write(&vec![2u8; MIB as usize]).unwrap();
    assert_eq!(code(up.write(&[3u8])), ErrorCode::SystemError);
    up.finish().unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(
        got.len() as u64,
        4 * MIB,
        "an upload never shrinks a volume"
    );
    let m = MIB as usize;
    assert!(got[..m].iter().all(|x| *x == 0xAA));
    assert!(got[m..m + 1000].iter().all(|x| *x == 1));
    assert!(got[m + 1000..m + 2000].iter().all(|x| *x == 0));
    assert!(got[m + 2000..2 * m].iter().all(|x| *x == 2));
    assert!(got[2 * m..].iter().all(|x| *x == 0xAA));

    let range = TransferRange {
        offset: MIB - 10,
        length: 20,
        sparse: false,
    };
    let mut d = drv.download(&pool, "v.img", range).await.unwrap();
    let mut buf = vec![0u8; 64];
    assert_eq!(d.next(&mut buf).unwrap(), Piece::Data(20));
    assert_eq!(&buf[..10], &[0xAA; 10]);
    assert_eq!(&buf[10..20], &[1; 10]);
    assert_eq!(d.next(&mut buf).unwrap(), Piece::End);
    // Past the end: nothing.
    let far = TransferRange {
        offset: 100 * MIB,
        ..Default::default()
    };
    let mut d = drv.download(&pool, "v.img", far).await.unwrap();
    assert_eq!(d.next(&mut buf).unwrap(), Piece::End);
}

#[tokio::test]
async fn a_volume_being_written_is_busy_and_one_being_read_is_not_written() {
    let root = tempfile::tempdir().unwrap();
    let (drv, pool) = pool_with(root.path(), "v.img", 4).await;
    let up = drv
        .upload(&pool, "v.img", TransferRange::default())
        .await
        .unwrap();
    let busy = ErrorCode::OperationInvalid;
    assert_eq!(code(drv.delete_volume(&pool, "v.img").await), busy);
    assert_eq!(
        code(drv.wipe_volume(&pool, "v.img", WipeAlgorithm::Zero).await),
        busy
    );
    let clone = "<volume><name>copy.img</name><capacity>0</capacity></volume>";
    assert_eq!(
        code(
            drv.clone_volume(&pool, clone, &pool, "v.img", CreateOptions::default())
                .await
        ),
        busy
    );
    assert_eq!(
        code(drv.download(&pool, "v.img", TransferRange::default()).await),
        busy
    );
    assert_eq!(
        code(drv.upload(&pool, "v.img", TransferRange::default()).await),
        busy
    );
    up.abandon();

    // Readers share; a writer waits for none of them, it is refused.
    let d1 = drv
        .download(&pool, "v.img", TransferRange::default())
        .await
        .unwrap();
    let d2 = drv
        .download(&pool, "v.img", TransferRange::default())
        .await
        .unwrap();
    assert_eq!(
        code(drv.upload(&pool, "v.img", TransferRange::default()).await),
        busy
    );
    assert_eq!(code(drv.delete_volume(&pool, "v.img").await), busy);
    drv.clone_volume(&pool, clone, &pool, "v.img", CreateOptions::default())
        .await
        .unwrap();
    drop((d1, d2));
    drv.delete_volume(&pool, "v.img").await.unwrap();
}

struct UsedBy(String);

impl VolumeUsers for UsedBy {
    fn running_user(&self, path: &Path) -> Option<String> {
        path.ends_with("v.img").then(|| self.0.clone())
    }
}

#[tokio::test]
async fn a_volume_a_running_domain_uses_is_not_uploaded_into() {
    let root = tempfile::tempdir().unwrap();
    let (drv, pool) = pool_with(root.path(), "v.img", 4).await;
    drv.set_volume_users(Arc::new(UsedBy("guest1".into())));
    let e = drv
        .upload(&pool, "v.img", TransferRange::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(e.to_vir_error().code, ErrorCode::OperationInvalid);
    assert!(e.to_string().contains("guest1"), "{e}");
    // Reading it is fine (libvirt allows it too).
    drv.download(&pool, "v.img", TransferRange::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_abandoned_upload_keeps_what_was_written() {
    let root = tempfile::tempdir().unwrap();
    let (drv, pool) = pool_with(root.path(), "v.img", 1).await;
    let mut up = drv
        .upload(&pool, "v.img", TransferRange::default())
        .await
        .unwrap();
    up.write(&[9u8; 4096]).unwrap();
    up.abandon();
    let got = std::fs::read(root.path().join("images/v.img")).unwrap();
    assert_eq!(got.len() as u64, MIB);
    assert!(got[..4096].iter().all(|x| *x == 9));
    // The volume is free again.
    drv.delete_volume(&pool, "v.img").await.unwrap();
}
