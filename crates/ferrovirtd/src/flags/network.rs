//! `virNetwork*` flags and enums of `libvirt-network.h`, under libvirt's
//! names without the `VIR_NETWORK_` prefix (`VIR_NETWORK_XML_INACTIVE`
//! becomes `XML_INACTIVE`). No network procedure is served yet.
