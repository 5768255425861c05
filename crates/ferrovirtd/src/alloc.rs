//! The daemon's memory allocator: jemalloc.
//!
//! With thousands of VMs, each holding a few small long-lived tasks and
//! buffers spread over the runtime's threads, glibc's per-thread arenas
//! keep freed memory fragmented and resident. jemalloc returns it (a
//! background thread decays unused pages while the daemon is idle) and
//! allocates faster under that load.

use std::ptr;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts jemalloc's background thread, which gives pages freed by a burst
/// (a restart re-adopting thousands of VMs, a flood) back to the system
/// while the daemon is otherwise idle. Failure only costs memory.
pub(crate) fn start_background_purge() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "jemalloc background thread not started");
    }
}

/// Gives every page that no allocation uses back to the system now: called
/// once start-up's parsing and re-adoption are done, so the daemon's
/// resident size is what it keeps, not what start-up passed through.
pub(crate) fn release_unused() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena, no value in or out.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is NUL-terminated, and this control takes no input
    // and gives no output, so every pointer is null and both lengths are 0.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(errno = rc, "jemalloc purge failed");
    }
}

/// The heap as jemalloc counts it: bytes the daemon's allocations hold,
/// and bytes of memory jemalloc keeps resident for them (its own metadata
/// and partly used pages included). Logged once start-up is done, so the
/// resident size of a daemon with thousands of VMs can be told apart into
/// what it holds and what the allocator keeps.
pub(crate) fn log_heap() {
    let figures = tikv_jemalloc_ctl::epoch::advance().and_then(|_| {
        Ok((
            tikv_jemalloc_ctl::stats::allocated::read()?,
            tikv_jemalloc_ctl::stats::resident::read()?,
        ))
    });
    match figures {
        Ok((allocated, resident)) => tracing::info!(
            allocated_kib = allocated / 1024,
            resident_kib = resident / 1024,
            "heap after start-up"
        ),
        Err(e) => tracing::debug!(error = %e, "jemalloc statistics unavailable"),
    }
}
