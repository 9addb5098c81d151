//! Per-worker shards of the counters every request updates. Each gateway worker thread
//! (see `server`) counts into its own shard — its own cache lines, locked only by itself on
//! the hot path — and readers (the report loop, `/metrics`) add the shards up. Without
//! this, both workers write the same few cache lines on every request and each write waits
//! for the line to come over from the other core.
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Make the calling thread count into shard `i` (modulo [`count`]). A gateway worker thread
/// calls this once; every other thread counts into shard 0.
pub fn enter(i: usize) {
    SHARD.with(|s| s.set(i % count()));
}

/// The calling thread's shard.
pub fn current() -> usize {
    SHARD.with(Cell::get)
}

/// Shards per counter: one per core (at most 16), whatever the worker count.
pub fn count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16)
    })
}

/// A value alone on its cache lines (128 bytes: two lines, as adjacent-line prefetch pairs
/// them), so writes to one shard never slow a reader or writer of the next.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// One `T` per shard.
pub fn shards<T>(mut make: impl FnMut() -> T) -> Box<[Padded<T>]> {
    (0..count()).map(|_| Padded(make())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_shard_and_others_count_into_the_first() {
        assert_eq!(
            current(),
            0,
            "a thread that never entered counts into shard 0"
        );
        let n = count();
        let got = std::thread::spawn(move || {
            enter(n + 1);
            current()
        })
        .join()
        .unwrap();
        assert_eq!(
            got,
            (n + 1) % n,
            "a worker past the shard count wraps around"
        );
        assert_eq!(
            current(),
            0,
            "entering on one thread leaves the others alone"
        );
        assert!(std::mem::align_of::<Padded<u64>>() >= 128);
    }
}
