//! The exec helper through which the driver starts QEMU (see the `confine`
//! crate): it lives in this package so that building the driver's tests
//! builds it too.

fn main() {
    confine::child::main()
}
