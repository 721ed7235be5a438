//! The memory allocator: mimalloc, for every binary that links casebridge
//! (the service, the benchmark, the tests).
//!
//! With the system allocator (glibc), allocation was a third of the sync
//! benchmark's CPU: arena locks and chunk consolidation across the
//! runtime's and SQLite's threads. mimalloc raised end-to-end throughput by
//! about a fifth and halved the p99 latency at 1,000 messages/s (README,
//! Benchmark). Left at its defaults it also held on to memory (2 MiB
//! transparent huge pages, freed pages returned after a delay), which put
//! the service at 125 MB with 10,000 open conversations; without huge
//! pages (the `no_thp` feature) and with [`tune`], 54 MB.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: its place in `mi_option_t`, the same in
/// mimalloc 2 and 3 (options are only ever added at the end).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the operating system at once instead of a
/// second later: a burst of ingest then leaves no peak of freed pages.
/// Call first thing in `main`. `MIMALLOC_PURGE_DELAY` in the environment
/// (milliseconds) wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's integer options; any thread, any time.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
    }
}
