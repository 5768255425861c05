//! Wire structures of the CPU model procedures.

use crate::xdr_struct;

/// `REMOTE_CPU_BASELINE_MAX`.
pub const CPU_BASELINE_MAX: usize = 256;
/// `REMOTE_CONNECT_CPU_MODELS_MAX`.
pub const CONNECT_CPU_MODELS_MAX: usize = 8192;

xdr_struct! {
    /// `remote_connect_get_cpu_model_names_args`.
    pub struct ConnectGetCpuModelNamesArgs {
        pub arch: String,
        pub need_results: i32,
        pub flags: u32,
    }

    /// `remote_connect_get_cpu_model_names_ret`.
    pub struct ConnectGetCpuModelNamesRet {
        pub models: Vec<String> [max = CONNECT_CPU_MODELS_MAX],
        pub ret: i32,
    }

    /// `remote_connect_baseline_cpu_args`.
    pub struct ConnectBaselineCpuArgs {
        pub xml_cpus: Vec<String> [max = CPU_BASELINE_MAX],
        pub flags: u32,
    }

    /// `remote_connect_baseline_cpu_ret` and
    /// `remote_connect_baseline_hypervisor_cpu_ret`.
    pub struct ConnectBaselineCpuRet {
        pub cpu: String,
    }

    /// `remote_connect_baseline_hypervisor_cpu_args`.
    pub struct ConnectBaselineHypervisorCpuArgs {
        pub emulator: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub xml_cpus: Vec<String> [max = CPU_BASELINE_MAX],
        pub flags: u32,
    }

    /// `remote_connect_compare_hypervisor_cpu_args`.
    pub struct ConnectCompareHypervisorCpuArgs {
        pub emulator: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub xml_cpu: String,
        pub flags: u32,
    }

    /// `remote_connect_compare_cpu_args`.
    pub struct ConnectCompareCpuArgs {
        pub xml: String,
        pub flags: u32,
    }

    /// `remote_connect_compare_cpu_ret` and
    /// `remote_connect_compare_hypervisor_cpu_ret`.
    pub struct ConnectCompareCpuRet {
        pub result: i32,
    }
}
