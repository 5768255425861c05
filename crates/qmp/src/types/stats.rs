//! Typed QMP queries of a guest's statistics: block counters, block node
//! sizes, the balloon, vCPU and I/O threads, and QOM properties (the
//! balloon's guest statistics live there).
//!
//! Counters are read leniently (see [`super::lenient`]): a counter of the
//! wrong type reads as absent rather than failing the whole reply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commands::{Command, Empty};
use super::lenient;

/// `query-blockstats`: I/O counters of every block device, or with
/// `query-nodes` of every named node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryBlockstats {
    /// Report every named node (flat) instead of the devices' trees.
    #[serde(rename = "query-nodes", skip_serializing_if = "Option::is_none")]
    pub query_nodes: Option<bool>,
}

impl Command for QueryBlockstats {
    const NAME: &'static str = "query-blockstats";
    type Response = Vec<BlockStatsEntry>;
}

/// One entry of `query-blockstats` (`BlockStats`): a device or node, its
/// counters, the node below it (`parent`) and its backing image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockStatsEntry {
    /// Legacy drive name; empty for `-blockdev` devices.
    #[serde(default)]
    pub device: Option<String>,
    /// The device's QOM path or id.
    #[serde(default)]
    pub qdev: Option<String>,
    /// The node the counters are of.
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    /// The counters.
    #[serde(default)]
    pub stats: BlockDeviceStats,
    /// The protocol node below this one.
    #[serde(default)]
    pub parent: Option<Box<BlockStatsEntry>>,
    /// The backing image's entry.
    #[serde(default)]
    pub backing: Option<Box<BlockStatsEntry>>,
}

/// `BlockDeviceStats`, the members a manager reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceStats {
    #[serde(default, deserialize_with = "lenient::u64")]
    pub rd_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub wr_bytes: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub rd_operations: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub wr_operations: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub flush_operations: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub rd_total_time_ns: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub wr_total_time_ns: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub flush_total_time_ns: Option<u64>,
    /// Offset of the highest sector written so far.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub wr_highest_offset: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub failed_rd_operations: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub failed_wr_operations: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub failed_flush_operations: Option<u64>,
}

/// `query-named-block-nodes`: every named node with its image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryNamedBlockNodes {
    /// Omit the backing images' nested descriptions (each node is listed
    /// on its own anyway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flat: Option<bool>,
}

impl Command for QueryNamedBlockNodes {
    const NAME: &'static str = "query-named-block-nodes";
    type Response = Vec<NamedBlockNode>;
}

/// One node of `query-named-block-nodes` (`BlockDeviceInfo`, in part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedBlockNode {
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    /// The file or protocol name.
    #[serde(default)]
    pub file: Option<String>,
    /// The driver (`qcow2`, `raw`, `file`, ...).
    #[serde(default)]
    pub drv: Option<String>,
    #[serde(default)]
    pub image: Option<ImageInfo>,
}

/// `ImageInfo`, the sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Size the guest sees.
    #[serde(rename = "virtual-size", default, deserialize_with = "lenient::u64")]
    pub virtual_size: Option<u64>,
    /// Bytes the image occupies on the host (absent: not thin).
    #[serde(rename = "actual-size", default, deserialize_with = "lenient::u64")]
    pub actual_size: Option<u64>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
}

/// `query-balloon`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryBalloon;

impl Command for QueryBalloon {
    const NAME: &'static str = "query-balloon";
    type Response = BalloonInfo;
}

/// Reply of `query-balloon`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalloonInfo {
    /// Memory the guest has, in bytes.
    #[serde(default, deserialize_with = "lenient::u64")]
    pub actual: Option<u64>,
}

/// `query-cpus-fast`: the vCPUs and their host threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryCpusFast;

impl Command for QueryCpusFast {
    const NAME: &'static str = "query-cpus-fast";
    type Response = Vec<CpuInfoFast>;
}

/// One vCPU of `query-cpus-fast`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfoFast {
    #[serde(rename = "cpu-index", default, deserialize_with = "lenient::u64")]
    pub cpu_index: Option<u64>,
    /// The host thread (TID) running it.
    #[serde(rename = "thread-id", default, deserialize_with = "lenient::u64")]
    pub thread_id: Option<u64>,
    #[serde(rename = "qom-path", default)]
    pub qom_path: Option<String>,
}

/// `query-hotpluggable-cpus`: the CPU slots of the machine's topology.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryHotpluggableCpus;

impl Command for QueryHotpluggableCpus {
    const NAME: &'static str = "query-hotpluggable-cpus";
    type Response = Vec<HotpluggableCpu>;
}

/// One CPU slot of `query-hotpluggable-cpus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HotpluggableCpu {
    /// The device type that plugs into it (`device_add` driver).
    #[serde(rename = "type")]
    pub driver: String,
    #[serde(rename = "vcpus-count", default)]
    pub vcpus_count: u64,
    /// Where it sits (`socket-id`, `die-id`, `core-id`, `thread-id`):
    /// also `device_add`'s properties.
    #[serde(default)]
    pub props: serde_json::Map<String, Value>,
    /// The CPU in it, if the slot is taken.
    #[serde(rename = "qom-path", default)]
    pub qom_path: Option<String>,
}

/// `query-iothreads`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryIothreads;

impl Command for QueryIothreads {
    const NAME: &'static str = "query-iothreads";
    type Response = Vec<IothreadInfo>;
}

/// One I/O thread of `query-iothreads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IothreadInfo {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "thread-id", default, deserialize_with = "lenient::u64")]
    pub thread_id: Option<u64>,
    #[serde(rename = "poll-max-ns", default, deserialize_with = "lenient::u64")]
    pub poll_max_ns: Option<u64>,
    #[serde(rename = "poll-grow", default, deserialize_with = "lenient::u64")]
    pub poll_grow: Option<u64>,
    #[serde(rename = "poll-shrink", default, deserialize_with = "lenient::u64")]
    pub poll_shrink: Option<u64>,
}

/// `qom-get`: one property of a QOM object, as QEMU returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QomGet {
    pub path: String,
    pub property: String,
}

impl Command for QomGet {
    const NAME: &'static str = "qom-get";
    type Response = Value;
}

/// `qom-set`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QomSet {
    pub path: String,
    pub property: String,
    pub value: Value,
}

impl Command for QomSet {
    const NAME: &'static str = "qom-set";
    type Response = Empty;
}

/// The `guest-stats` property of a virtio balloon: the guest's memory
/// statistics (bytes, or counts for faults) and when the guest last
/// reported them. A statistic the guest does not report is -1 in QEMU's
/// reply and absent here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalloonGuestStats {
    #[serde(default)]
    pub stats: GuestMemoryStats,
    /// Seconds since the epoch of the guest's last update (0: never).
    #[serde(rename = "last-update", default, deserialize_with = "lenient::u64")]
    pub last_update: Option<u64>,
}

/// The statistics in [`BalloonGuestStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMemoryStats {
    #[serde(rename = "stat-swap-in", default, deserialize_with = "lenient::u64")]
    pub swap_in: Option<u64>,
    #[serde(rename = "stat-swap-out", default, deserialize_with = "lenient::u64")]
    pub swap_out: Option<u64>,
    #[serde(
        rename = "stat-major-faults",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub major_faults: Option<u64>,
    #[serde(
        rename = "stat-minor-faults",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub minor_faults: Option<u64>,
    #[serde(
        rename = "stat-free-memory",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub free_memory: Option<u64>,
    #[serde(
        rename = "stat-total-memory",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub total_memory: Option<u64>,
    #[serde(
        rename = "stat-available-memory",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub available_memory: Option<u64>,
    #[serde(
        rename = "stat-disk-caches",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub disk_caches: Option<u64>,
    #[serde(
        rename = "stat-htlb-pgalloc",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub htlb_pgalloc: Option<u64>,
    #[serde(
        rename = "stat-htlb-pgfail",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub htlb_pgfail: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockstats_reply_parses_with_odd_counters() {
        let v = serde_json::json!([{
            "device": "", "node-name": "libvirt-1-format",
            "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
            "stats": {"rd_bytes": 512, "wr_bytes": "x", "rd_operations": 1,
                      "wr_highest_offset": 4096, "timed_stats": []},
            "parent": {"node-name": "libvirt-1-storage", "stats": {"wr_bytes": 7}},
            "backing": {"node-name": "b", "stats": {"rd_bytes": 3}}
        }]);
        let e: Vec<BlockStatsEntry> = serde_json::from_value(v).unwrap();
        assert_eq!(e[0].stats.rd_bytes, Some(512));
        assert_eq!(
            e[0].stats.wr_bytes, None,
            "a string counter reads as absent"
        );
        assert_eq!(e[0].parent.as_ref().unwrap().stats.wr_bytes, Some(7));
        assert_eq!(
            e[0].backing.as_ref().unwrap().node_name.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn guest_stats_minus_one_is_absent() {
        let v = serde_json::json!({"stats": {"stat-swap-in": -1, "stat-free-memory": 1024},
                                   "last-update": 17});
        let g: BalloonGuestStats = serde_json::from_value(v).unwrap();
        assert_eq!(g.stats.swap_in, None);
        assert_eq!(g.stats.free_memory, Some(1024));
        assert_eq!(g.last_update, Some(17));
    }

    #[test]
    fn argumentless_queries_serialise_without_arguments() {
        assert_eq!(
            serde_json::to_value(QueryBlockstats::default()).unwrap(),
            serde_json::json!({})
        );
        assert_eq!(serde_json::to_value(QueryBalloon).unwrap(), Value::Null);
    }
}
