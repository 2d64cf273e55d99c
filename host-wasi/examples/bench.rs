//! Guest against native for lookup (`status`), `store` and `restore`
//! (issue #4, part 6); the numbers go to the guest section of the repository's `BENCHMARKS.md`.
//!
//! Native is the plumbing the `cachet` binary runs, called in-process
//! (no process start-up); guest is [`Embedding::run`], which includes
//! instantiating the pre-compiled module and its WASI context for every
//! call, since that is what an embedder pays per subcommand.
//!
//! ```sh
//! cargo build -p cachet-wasi --target wasm32-wasip1 --release
//! cargo run -p cachet-wasi --features embed --release --example bench -- \
//!     target/wasm32-wasip1/release/cachet-wasi.wasm [FILES] [BYTES_PER_FILE]
//! ```

use core::time::Duration;
use std::path::Path;
use std::time::Instant;

use cachet::fs::CapStdFilesystem;
use cachet::tasks::Threads;
use cachet_cli::{self as cli, Host, PlumbingCli, SystemContext};
use cachet_core::cache::Cache;
use cachet_wasi::embed::Embedding;

fn native(workspace: &Path, cache: &Path, args: &[&str]) -> i32 {
    let mut argv = vec!["cachet"];
    argv.extend_from_slice(args);
    let line = PlumbingCli::parse_from_named("cachet", argv).expect("arguments");
    let fs = CapStdFilesystem::open_ambient(workspace, cache).expect("roots");
    let host = Host::new(Some(workspace.to_path_buf()), Vec::new());
    let cache = Cache::with_options(fs, line.globals.cache_options()).with_tasks(Threads::new());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    i32::from(cli::run_plumbing(
        &line.command,
        &host,
        &cache,
        &mut SystemContext::new(),
        &mut out,
        &mut err,
    ))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

type Runner<'a> = dyn Fn(&Path, &Path, &[&str]) -> i32 + 'a;

/// Medians of lookup, store and restore for each runner. The runners are
/// interleaved within every round, each going first in alternate rounds, so
/// that neither pays more of the page-cache writeback the other caused.
fn measure(
    runners: [(&Runner<'_>, &Path); 2],
    workspace: &Path,
    rounds: usize,
) -> [[Duration; 3]; 2] {
    let mut samples: [[Vec<Duration>; 3]; 2] = Default::default();
    for round in 0..rounds {
        let key = format!("{:064x}", round + 1);
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let steps: [(&[&str], i32); 3] = [
            (&["status", "--key", &key], 1),
            (&["store", "--key", &key, "--output", "out"], 0),
            (&["restore", "--key", &key], 0),
        ];
        for (step, (args, expected)) in steps.iter().enumerate() {
            for which in order {
                let (runner, cache) = runners[which];
                let start = Instant::now();
                let status = runner(workspace, cache, args);
                samples[which][step].push(start.elapsed());
                assert_eq!(status, *expected, "runner {which}: {args:?}");
            }
        }
    }
    samples.map(|runner| runner.map(median))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let module = args
        .next()
        .expect("usage: bench GUEST.wasm [FILES] [BYTES]");
    let files: usize = args.next().map_or(100, |n| n.parse().expect("FILES"));
    let bytes: usize = args.next().map_or(16 * 1024, |n| n.parse().expect("BYTES"));
    let rounds = 21;

    let dir = tempfile::tempdir().expect("tempdir");
    let workspace = dir.path().join("ws");
    for index in 0..files {
        let path = workspace.join(format!("out/d{}/f{index}", index % 10));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..bytes).map(|i| (i * 31 + index) as u8).collect();
        std::fs::write(path, content).unwrap();
    }
    let started = Instant::now();
    let embedding = Embedding::from_file(Path::new(&module)).expect("guest");
    println!("guest compile: {:?} (once)", started.elapsed());
    // Warm both paths once.
    let guest = |w: &Path, c: &Path, a: &[&str]| embedding.run(w, c, a).expect("guest").status;
    native(&workspace, &dir.path().join("warm-n"), &["info"]);
    guest(&workspace, &dir.path().join("warm-g"), &["info"]);

    let (cache_n, cache_g) = (dir.path().join("cache-n"), dir.path().join("cache-g"));
    let [n, g] = measure(
        [(&native, cache_n.as_path()), (&guest, cache_g.as_path())],
        &workspace,
        rounds,
    );
    println!("{files} outputs x {bytes} bytes, median of {rounds}");
    println!("| operation | native | guest | guest / native |");
    println!("|---|---:|---:|---:|");
    for (index, name) in ["lookup (status)", "store", "restore"].iter().enumerate() {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2}x |",
            n[index].as_secs_f64() * 1e3,
            g[index].as_secs_f64() * 1e3,
            g[index].as_secs_f64() / n[index].as_secs_f64()
        );
    }
}
