//! The README quickstart: the example that ships in the repository is a
//! miss, then a hit.

use std::fs;
use std::path::Path;

use crate::support::{Sandbox, copy_tree};

#[test]
fn readme_quickstart_example_misses_then_hits() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example");
    let sandbox = Sandbox::new();
    for name in ["build.sh", "src", ".gitignore"] {
        let from = example.join(name);
        if from.is_dir() {
            copy_tree(&from, &sandbox.ws.join(name));
        } else {
            fs::copy(&from, sandbox.ws.join(name)).unwrap();
        }
    }
    let workspace = sandbox.ws.to_str().unwrap().to_owned();
    // The README's command, with the copy as the workspace.
    let args = [
        "run",
        "-v",
        "--workspace",
        &workspace,
        "--input",
        "src/**",
        "--input",
        "build.sh",
        "--output",
        "out",
        "--",
        "sh",
        "build.sh",
    ];
    let mut command = sandbox.cachet();
    command.current_dir(&sandbox.root).args(args);
    let miss = crate::support::Outcome::of(command.output().unwrap());
    assert_eq!(miss.code, 0, "{miss:?}");
    assert!(miss.was_miss(), "{miss:?}");
    let greeting = fs::read(sandbox.ws.join("out/greeting.txt")).unwrap();
    assert_eq!(greeting, b"Hello, world!\n");

    fs::remove_dir_all(sandbox.ws.join("out")).unwrap();
    let mut command = sandbox.cachet();
    command.current_dir(&sandbox.root).args(args);
    let hit = crate::support::Outcome::of(command.output().unwrap());
    assert_eq!(hit.code, 0, "{hit:?}");
    assert!(hit.was_hit(), "{hit:?}");
    assert_eq!(hit.stdout, miss.stdout);
    assert_eq!(
        fs::read(sandbox.ws.join("out/greeting.txt")).unwrap(),
        greeting
    );
}
