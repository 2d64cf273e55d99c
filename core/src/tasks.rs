//! Running the core's independent work on several threads: the [`Tasks`]
//! trait, kept apart from file I/O ([`crate::fs`]) as blake3 keeps its
//! `Join` apart from hashing.
//!
//! The core owns no threads. Where it has work that splits into independent
//! parts (staging a restore's outputs in buckets, OP-3; checking a large
//! entry's blobs during a lookup, OP-1), it hands a few tasks to the
//! [`Tasks`] its `Cache` was given, and each task calls the filesystem like
//! any other caller. The tasks share nothing but the filesystem and what the
//! core coordinates through atomics, and the outcome never depends on how
//! many of them run at once or in which order.
//!
//! [`Sequential`] runs them one after another on the calling thread; it is
//! what a cache uses unless told otherwise, and all a host without threads
//! (the WASI guest) needs. The std binding's scoped threads are
//! `cachet::tasks::Threads`.

/// Runs a handful of independent tasks over one filesystem of type `F`,
/// on as many threads as the host has to spare.
///
/// The trait is generic over the filesystem because only a `Sync`
/// filesystem can be shared with other threads: [`Sequential`] runs tasks
/// over any filesystem, a threaded runner implements `Tasks<F>` for
/// `F: Sync` only.
pub trait Tasks<F: ?Sized> {
    /// How many tasks run at once. The core never hands over more tasks
    /// than this in one [`Tasks::run`], and hands over one when this is 1.
    fn parallelism(&self) -> usize;

    /// Calls every task once with `fs`, at most [`Tasks::parallelism`] at
    /// a time, in any order, and returns when all have returned. Each task
    /// keeps its own result; a task that panics may take the caller with
    /// it, as it would on one thread (the core's tasks do not panic,
    /// SAFE-1).
    fn run(&self, fs: &F, tasks: &mut [&mut (dyn FnMut(&F) + Send)]);
}

/// Runs every task on the calling thread, in order: the default of a
/// `Cache`, and the runner of hosts without threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sequential;

impl<F: ?Sized> Tasks<F> for Sequential {
    fn parallelism(&self) -> usize {
        1
    }

    fn run(&self, fs: &F, tasks: &mut [&mut (dyn FnMut(&F) + Send)]) {
        for task in tasks {
            task(fs);
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn sequential_runs_every_task_once_in_order_with_the_filesystem() {
        let next = AtomicUsize::new(0);
        let mut order = [usize::MAX; 3];
        let mut jobs: Vec<_> = order
            .iter_mut()
            .map(|slot| {
                let next = &next;
                move |fs: &usize| *slot = next.fetch_add(1, Ordering::Relaxed) * 10 + fs
            })
            .collect();
        let mut jobs: Vec<&mut (dyn FnMut(&usize) + Send)> = jobs
            .iter_mut()
            .map(|job| job as &mut (dyn FnMut(&usize) + Send))
            .collect();
        Sequential.run(&7, &mut jobs);
        drop(jobs);
        assert_eq!(order, [7, 17, 27]);
        assert_eq!(Tasks::<usize>::parallelism(&Sequential), 1);
    }
}
