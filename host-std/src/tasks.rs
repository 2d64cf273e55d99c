//! [`Threads`]: the core's [`Tasks`] on scoped threads.
//!
//! A `Cache` runs its independent work (staging a restore's outputs,
//! checking a large entry's blobs) on whatever [`Tasks`] it was given; the
//! `cachet` command gives it these threads:
//!
//! ```no_run
//! # use cachet::fs::CapStdFilesystem;
//! # use cachet::tasks::Threads;
//! # use cachet_core::cache::Cache;
//! # let fs = CapStdFilesystem::open_ambient(".".as_ref(), ".cachet".as_ref()).unwrap();
//! let cache = Cache::new(fs).with_tasks(Threads::new());
//! ```

use std::sync::{Mutex, OnceLock, PoisonError};

use cachet_core::tasks::Tasks;

/// The most threads [`Threads::new`] runs at once. Each task of a restore
/// holds a copy buffer (256 KiB by default) and two open files, so this
/// bounds what one restore adds to memory and descriptors on a large
/// machine, whatever its core count.
pub const MAX_DEFAULT_PARALLELISM: usize = 8;

/// Runs tasks on up to [`Tasks::parallelism`] scoped threads, the calling
/// thread included, over any `Sync` filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Threads {
    /// `None`: [`default_parallelism`], looked up when first needed.
    parallelism: Option<usize>,
}

impl Threads {
    /// As many threads as this process has cores, at most
    /// [`MAX_DEFAULT_PARALLELISM`].
    pub fn new() -> Threads {
        Threads { parallelism: None }
    }

    /// Up to `parallelism` threads (at least one); 1 keeps all work on the
    /// calling thread.
    pub fn with_parallelism(parallelism: usize) -> Threads {
        Threads {
            parallelism: Some(parallelism.max(1)),
        }
    }
}

impl<F: Sync + ?Sized> Tasks<F> for Threads {
    fn parallelism(&self) -> usize {
        self.parallelism.unwrap_or_else(default_parallelism)
    }

    /// Each thread takes the next task not yet taken until none is left,
    /// the calling thread included, so a thread that cannot be started
    /// only means fewer threads.
    fn run(&self, fs: &F, tasks: &mut [&mut (dyn FnMut(&F) + Send)]) {
        let threads = Tasks::<F>::parallelism(self).min(tasks.len());
        let queue = Mutex::new(tasks.iter_mut());
        let worker = || {
            loop {
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                match next {
                    Some(task) => task(fs),
                    None => return,
                }
            }
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
                .collect();
            worker();
            for helper in helpers {
                // Core code does not panic (SAFE-1); if it did, the panic
                // belongs to the caller, as on one thread.
                if let Err(panic) = helper.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }
}

/// The number of cores this process may run on, at most
/// [`MAX_DEFAULT_PARALLELISM`]. Asked once per process, and only by an
/// operation with work to share out: finding it out reads the affinity mask
/// and cgroup quota files, which a `cachet status` of a small entry should
/// not pay for.
fn default_parallelism() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |cores| cores.get())
            .min(MAX_DEFAULT_PARALLELISM)
    })
}
