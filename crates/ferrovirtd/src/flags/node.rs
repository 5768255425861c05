//! `virNode*` flags and enums of `libvirt-host.h` (`virNodeGetCPUStatsAllCPUs`,
//! `virNodeSuspendTarget`, `virNodeAllocPagesFlags`, ...), under libvirt's
//! names without the `VIR_NODE_` prefix. None is read yet: the node calls
//! served today (`NODE_GET_INFO`, `NODE_GET_SECURITY_MODEL`) take no flags.
