//! The global allocator. With the `jemalloc` feature (on by default) every binary linking this
//! crate — the collector, its tests and benches — allocates through jemalloc, so
//! `memory_limiter`'s `measure: heap` can read what is allocated ([`allocated_bytes`]).
//!
//! jemalloc also replaces the C library's `malloc` (`unprefixed_malloc_on_supported_platforms`),
//! so SQLite's page caches (bounded by the store's `cache_size_mib`) are in the same heap and
//! counted. It is built with background threads on (`background_threads` feature); [`tune`]
//! also shortens every arena's dirty-page decay to [`DIRTY_DECAY_MS`], so the pages a big
//! request freed go back to the kernel within about a second and RSS follows the heap.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Dirty pages (freed, not yet returned) are purged after this long.
pub const DIRTY_DECAY_MS: isize = 1000;

/// Whether the allocator statistics are available in this build.
pub const fn heap_stats_available() -> bool {
    cfg!(feature = "jemalloc")
}

/// jemalloc's `stats.allocated` after an `epoch` advance; `None` without `jemalloc` or when the
/// statistics cannot be read.
#[cfg(feature = "jemalloc")]
pub fn allocated_bytes() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::allocated::read()
        .ok()
        .map(|b| b as u64)
}

#[cfg(not(feature = "jemalloc"))]
pub fn allocated_bytes() -> Option<u64> {
    None
}

/// jemalloc's `stats.resident` (pages the allocator maps and touches) after an `epoch` advance.
#[cfg(feature = "jemalloc")]
pub fn resident_bytes() -> Option<u64> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::resident::read()
        .ok()
        .map(|b| b as u64)
}

#[cfg(not(feature = "jemalloc"))]
pub fn resident_bytes() -> Option<u64> {
    None
}

/// Background purging on and a short dirty decay for every arena (existing and future). Idempotent.
#[cfg(feature = "jemalloc")]
pub fn tune() {
    use tikv_jemalloc_ctl::{Access, AsName};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
            tracing::warn!(error = %e, "jemalloc: cannot enable background threads");
        }
        let _ = b"arenas.dirty_decay_ms\0".name().write(DIRTY_DECAY_MS);
        let narenas = tikv_jemalloc_ctl::arenas::narenas::read().unwrap_or(0);
        for i in 0..narenas {
            let key = format!("arena.{i}.dirty_decay_ms\0");
            let _ = key.as_bytes().name().write(DIRTY_DECAY_MS);
        }
    });
}

#[cfg(not(feature = "jemalloc"))]
pub fn tune() {}
