//! The storage driver against real files and the real qemu-img: the whole
//! pool and volume lifecycle, libvirt's error codes for bad input, events,
//! and re-adoption of what a killed daemon left.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use storage::{
    BuildMode, CreateOptions, PoolEventKind, PoolLifecycle, ResizeOptions, StorageConfig,
    StorageDriver, VolFormat, WipeAlgorithm,
};
use virterror::{ErrorCode, ToVirError};

fn cfg(root: &Path) -> StorageConfig {
    assert!(
        Path::new("/usr/bin/qemu-img").exists(),
        "qemu-img is missing: install the qemu-utils package"
    );
    StorageConfig::new(root)
}

fn code<T>(r: storage::Result<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_vir_error().code,
    }
}

fn vol_xml(name: &str, cap: &str, format: &str) -> String {
    format!(
        "<volume><name>{name}</name><capacity unit='M'>{cap}</capacity>\
         <target><format type='{format}'/></target></volume>"
    )
}

#[tokio::test]
async fn default_pool_and_volume_lifecycle() {
    let root = tempfile::tempdir().unwrap();
    let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
    let pool = drv.lookup_by_name("default").unwrap();
    assert!(pool.is_active() && pool.autostart() && pool.is_persistent());
    assert_eq!(pool.def().target, root.path().join("images"));
    assert!(pool.info().capacity > 0);

    // raw, sparse (allocation 0) and fully allocated (libvirt's default)
    let sparse = "<volume><name>sparse.img</name><capacity unit='M'>8</capacity>\
                  <allocation>0</allocation></volume>";
    let v = drv
        .create_volume(&pool, sparse, CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(v.facts.capacity, 8 << 20);
    assert!(
        v.facts.allocation < 1 << 20,
        "sparse raw volume: {:?}",
        v.facts
    );
    let full = drv
        .create_volume(
            &pool,
            &vol_xml("full.img", "4", "raw"),
            CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(full.facts.allocation >= 4 << 20, "{:?}", full.facts);

    // qcow2 with a backing chain, cloned (flattened) into a new volume
    let base = drv
        .create_volume(
            &pool,
            &vol_xml("base.qcow2", "64", "qcow2"),
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let top_xml = format!(
        "<volume><name>top.qcow2</name><capacity unit='M'>64</capacity>\
         <target><format type='qcow2'/></target>\
         <backingStore><path>{}</path><format type='qcow2'/></backingStore></volume>",
        base.path.display()
    );
    let top = drv
        .create_volume(&pool, &top_xml, CreateOptions::default())
        .await
        .unwrap();
    let xml = drv.lookup_volume(&pool, "top.qcow2").unwrap().to_xml();
    assert!(xml.contains("<backingStore>"), "{xml}");
    assert!(xml.contains(&base.path.display().to_string()), "{xml}");
    let clone_xml =
        "<volume><name>clone.qcow2</name><target><format type='qcow2'/></target></volume>";
    let clone = drv
        .clone_volume(
            &pool,
            clone_xml,
            &pool,
            "top.qcow2",
            CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(clone.facts.format, VolFormat::Qcow2);
    assert_eq!(clone.facts.capacity, top.facts.capacity);
    assert!(clone.facts.qcow2.as_ref().unwrap().backing.is_none());

    // resize: libvirt's rules
    let grow = ResizeOptions::default();
    drv.resize_volume(&pool, "sparse.img", 16 << 20, grow)
        .await
        .unwrap();
    assert_eq!(
        drv.lookup_volume(&pool, "sparse.img")
            .unwrap()
            .facts
            .capacity,
        16 << 20
    );
    assert_eq!(
        code(drv.resize_volume(&pool, "sparse.img", 1 << 20, grow).await),
        ErrorCode::InvalidArg
    );
    let shrink = ResizeOptions {
        shrink: true,
        ..grow
    };
    drv.resize_volume(&pool, "sparse.img", 2 << 20, shrink)
        .await
        .unwrap();
    drv.resize_volume(&pool, "clone.qcow2", 128 << 20, grow)
        .await
        .unwrap();
    assert_eq!(
        drv.lookup_volume(&pool, "clone.qcow2")
            .unwrap()
            .facts
            .capacity,
        128 << 20
    );
    let alloc = ResizeOptions {
        allocate: true,
        ..grow
    };
    assert_eq!(
        code(
            drv.resize_volume(&pool, "clone.qcow2", 256 << 20, alloc)
                .await
        ),
        ErrorCode::OperationUnsupported
    );

    // wipe: zeroes a raw volume in place, empties a qcow2 one
    std::fs::write(&full.path, vec![0xAB; 4 << 20]).unwrap();
    drv.wipe_volume(&pool, "full.img", WipeAlgorithm::Zero)
        .await
        .unwrap();
    assert!(std::fs::read(&full.path).unwrap().iter().all(|b| *b == 0));
    drv.wipe_volume(&pool, "top.qcow2", WipeAlgorithm::Zero)
        .await
        .unwrap();
    let wiped = drv.lookup_volume(&pool, "top.qcow2").unwrap();
    assert_eq!(wiped.facts.capacity, 64 << 20);

    // lookups by key and path, and the pool by volume
    let (p, v) = drv
        .lookup_volume_by_path(&top.path.to_string_lossy())
        .unwrap();
    assert_eq!((p.name(), v.name.as_str()), ("default", "top.qcow2"));
    assert!(drv.lookup_volume_by_key(&v.key()).is_ok());

    for name in [
        "sparse.img",
        "full.img",
        "top.qcow2",
        "base.qcow2",
        "clone.qcow2",
    ] {
        drv.delete_volume(&pool, name).await.unwrap();
    }
    assert_eq!(pool.volume_count(), 0);
    assert_eq!(std::fs::read_dir(&pool.def().target).unwrap().count(), 0);
}

#[tokio::test]
async fn bad_input_gets_libvirts_codes_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
    let pool = drv.lookup_by_name("default").unwrap();
    let opts = CreateOptions::default();
    drv.create_volume(&pool, &vol_xml("a.img", "1", "raw"), opts)
        .await
        .unwrap();
    assert_eq!(
        code(
            drv.create_volume(&pool, &vol_xml("a.img", "1", "raw"), opts)
                .await
        ),
        ErrorCode::StorageVolExist
    );
    assert_eq!(
        code(
            drv.create_volume(&pool, &vol_xml("x/y", "1", "raw"), opts)
                .await
        ),
        ErrorCode::XmlDetail
    );
    assert_eq!(
        code(
            drv.create_volume(&pool, &vol_xml("..", "1", "raw"), opts)
                .await
        ),
        ErrorCode::XmlDetail
    );
    assert_eq!(
        code(
            drv.create_volume(&pool, &vol_xml("b", "1", "nope"), opts)
                .await
        ),
        ErrorCode::XmlError
    );
    let huge = "<volume><name>h</name><capacity unit='EiB'>100</capacity></volume>";
    assert_eq!(
        code(drv.create_volume(&pool, huge, opts).await),
        ErrorCode::Overflow
    );
    let orphan = "<volume><name>o.qcow2</name><capacity>1048576</capacity>\
                  <target><format type='qcow2'/></target>\
                  <backingStore><path>/nonexistent/base.qcow2</path></backingStore></volume>";
    assert_eq!(
        code(drv.create_volume(&pool, orphan, opts).await),
        ErrorCode::SystemError
    );
    let prealloc = CreateOptions {
        prealloc_metadata: true,
    };
    assert_eq!(
        code(
            drv.create_volume(&pool, &vol_xml("p.img", "1", "raw"), prealloc)
                .await
        ),
        ErrorCode::OperationUnsupported
    );
    // nothing half-made: only a.img is in the directory
    let names: Vec<_> = std::fs::read_dir(&pool.def().target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["a.img".to_owned()]);
    assert_eq!(pool.volume_count(), 1);

    // pools: unsupported types, relative targets, clashes
    let target = root.path().join("other");
    let other = format!(
        "<pool type='dir'><name>other</name><target><path>{}</path></target></pool>",
        target.display()
    );
    assert_eq!(
        code(
            drv.define("<pool type='netfs'><name>n</name><target><path>/n</path></target></pool>")
                .await
        ),
        ErrorCode::ConfigUnsupported
    );
    assert_eq!(
        code(
            drv.define("<pool type='dir'><name>r</name><target><path>rel</path></target></pool>")
                .await
        ),
        ErrorCode::XmlDetail
    );
    let p = drv.define(&other).await.unwrap();
    let same_target = other.replace("<name>other</name>", "<name>twin</name>");
    assert_eq!(
        code(drv.define(&same_target).await),
        ErrorCode::OperationFailed
    );
    let other_uuid = format!(
        "<pool type='dir'><name>other</name><uuid>{}</uuid><target><path>/x</path></target></pool>",
        uuid::Uuid::new_v4()
    );
    assert_eq!(
        code(drv.define(&other_uuid).await),
        ErrorCode::OperationFailed
    );
    // a target that is not a directory cannot start
    std::fs::write(&target, "a file").unwrap();
    assert_eq!(code(drv.start(&p, None).await), ErrorCode::SystemError);
    assert!(!p.is_active());
    assert_eq!(
        code(drv.create_volume(&p, &vol_xml("v", "1", "raw"), opts).await),
        ErrorCode::OperationInvalid
    );
    std::fs::remove_file(&target).unwrap();
    drv.start(&p, Some(BuildMode::Normal)).await.unwrap();
    assert_eq!(code(drv.undefine(&p).await), ErrorCode::OperationInvalid);
    assert_eq!(code(drv.start(&p, None).await), ErrorCode::OperationInvalid);
    assert_eq!(code(drv.lookup_by_name("nope")), ErrorCode::NoStoragePool);
    assert_eq!(
        code(drv.lookup_volume(&pool, "nope")),
        ErrorCode::NoStorageVol
    );
}

#[tokio::test]
async fn events_follow_the_pool_lifecycle() {
    let root = tempfile::tempdir().unwrap();
    let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    drv.add_event_listener(Box::new(move |e| {
        s2.lock().unwrap().push((e.name.clone(), e.kind));
    }));
    let xml = format!(
        "<pool type='dir'><name>ev</name><target><path>{}</path></target></pool>",
        root.path().join("ev").display()
    );
    let p = drv.define(&xml).await.unwrap();
    drv.build(&p, BuildMode::Normal).await.unwrap();
    drv.start(&p, None).await.unwrap();
    drv.refresh(&p).await.unwrap();
    drv.destroy(&p).await.unwrap();
    drv.delete(&p).await.unwrap();
    drv.undefine(&p).await.unwrap();
    use PoolLifecycle::*;
    let want: Vec<_> = [
        PoolEventKind::Lifecycle(Defined),
        PoolEventKind::Lifecycle(Created),
        PoolEventKind::Lifecycle(Started),
        PoolEventKind::Refresh,
        PoolEventKind::Lifecycle(Stopped),
        PoolEventKind::Lifecycle(Deleted),
        PoolEventKind::Lifecycle(Undefined),
    ]
    .into_iter()
    .map(|k| ("ev".to_owned(), k))
    .collect();
    assert_eq!(*seen.lock().unwrap(), want);
    assert!(drv.lookup_by_name("ev").is_err());
    assert!(!root.path().join("ev").exists());
}

#[tokio::test]
async fn reopen_readopts_active_pools_and_sweeps_partial_volumes() {
    let root = tempfile::tempdir().unwrap();
    let target = {
        let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
        let pool = drv.lookup_by_name("default").unwrap();
        drv.create_volume(
            &pool,
            &vol_xml("keep.img", "1", "raw"),
            CreateOptions::default(),
        )
        .await
        .unwrap();
        let xml = format!(
            "<pool type='dir'><name>transient</name><target><path>{}</path></target></pool>",
            root.path().join("t").display()
        );
        drv.create(&xml, Some(BuildMode::Normal)).await.unwrap();
        pool.def().target.clone()
    };
    // What a daemon killed mid-build leaves behind.
    let partial = target.join(".new.img.ferrovirt-partial.4242.7");
    std::fs::write(&partial, vec![1u8; 4096]).unwrap();
    let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
    let pool = drv.lookup_by_name("default").unwrap();
    assert!(pool.is_active());
    let names: Vec<_> = pool.volumes().iter().map(|v| v.name.clone()).collect();
    assert_eq!(names, vec!["keep.img".to_owned()]);
    assert!(!partial.exists(), "partial volume swept");
    let t = drv.lookup_by_name("transient").unwrap();
    assert!(t.is_active() && !t.is_persistent());
    // The default pool is not defined again after the user removes it.
    drv.destroy(&pool).await.unwrap();
    drv.undefine(&pool).await.unwrap();
    let drv = StorageDriver::open(cfg(root.path())).await.unwrap();
    assert!(drv.lookup_by_name("default").is_err());
}
