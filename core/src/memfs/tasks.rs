//! [`PretendThreads`]: a [`Tasks`] runner for tests of how the core shares
//! its work out.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::tasks::Tasks;

/// Reports `parallelism` threads but runs every task on the calling thread,
/// last first, so that tests see the core's outcome depend neither on the
/// order in which its tasks run nor on how many of them find work. It runs
/// over any filesystem, a [`super::MemFs`] included, and records the most
/// tasks one [`Tasks::run`] was given, so that a test can tell the core did
/// share its work out. Clones share the record.
#[derive(Clone, Debug, Default)]
pub struct PretendThreads {
    parallelism: usize,
    most_tasks: Arc<AtomicUsize>,
}

impl PretendThreads {
    /// A runner that reports `parallelism` threads (at least 1).
    pub fn new(parallelism: usize) -> PretendThreads {
        PretendThreads {
            parallelism: parallelism.max(1),
            most_tasks: Arc::default(),
        }
    }

    /// The most tasks one [`Tasks::run`] was given so far.
    pub fn most_tasks(&self) -> usize {
        self.most_tasks.load(Ordering::Relaxed)
    }
}

impl<F: ?Sized> Tasks<F> for PretendThreads {
    fn parallelism(&self) -> usize {
        self.parallelism.max(1)
    }

    fn run(&self, fs: &F, tasks: &mut [&mut (dyn FnMut(&F) + Send)]) {
        self.most_tasks.fetch_max(tasks.len(), Ordering::Relaxed);
        for task in tasks.iter_mut().rev() {
            task(fs);
        }
    }
}
