//! ferrovirtd: a QEMU management daemon that speaks libvirt's remote protocol.

mod config;

fn main() {
    let _ = config::Config::default();
}
