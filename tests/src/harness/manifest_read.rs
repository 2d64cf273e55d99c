//! Fuzz target `manifest_read` (MAN-2, MAN-3, PATH-3, SAFE-1).
//!
//! Any bytes go to [`Manifest::parse`]. It must not panic (SAFE-1), and for
//! accepted input:
//!
//! - every output decodes, its count matches, and its path is a valid
//!   workspace path (PATH-3: an invalid path makes the manifest corrupt);
//! - [`Manifest::parse_visiting`] agrees with [`Manifest::parse`] and
//!   visits exactly the outputs the iterator decodes, in order, and
//!   `Outputs::advance` lands where decoding would (the shortcuts lookup
//!   and restore take, MAN-4);
//! - writing it (MAN-2) gives bytes that parse to the same values, and
//!   writing those again gives the same bytes: write → read → write is
//!   stable, so a manifest cachet wrote reads back as exactly what it
//!   wrote. (That a manifest haz-cache wrote is reproduced byte for byte is
//!   checked on the reference vectors by `tests/vectors.rs`; the `encode`
//!   vectors are seeds of this target too.)

use alloc::vec::Vec;

use cachet_core::manifest::{Manifest, OutputRecord, write_manifest};
use cachet_core::path;

/// Runs the `manifest_read` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    let outputs: Vec<OutputRecord> = manifest.outputs().collect();
    assert_eq!(
        outputs.len(),
        manifest.output_count(),
        "output_count disagrees with the outputs iterator"
    );
    for output in &outputs {
        assert_eq!(
            path::validate(output.path.as_str()),
            Ok(()),
            "PATH-3: an accepted manifest holds an invalid path {:?}",
            output.path.as_str()
        );
    }

    let mut visited = Vec::new();
    let revisited = Manifest::parse_visiting(data, &mut |output| visited.push(output.clone()));
    assert!(
        revisited.is_ok_and(|m| m.head == manifest.head && m.tail == manifest.tail),
        "parse_visiting disagrees with parse"
    );
    assert!(visited == outputs, "parse_visiting visited other outputs");
    for skip in [1, 2, outputs.len() / 2, outputs.len().saturating_sub(1)] {
        let mut rest = manifest.outputs();
        assert_eq!(
            rest.advance(skip),
            skip.min(outputs.len()),
            "advance miscounted"
        );
        assert!(
            rest.eq(outputs.iter().skip(skip).cloned()),
            "advance({skip}) landed elsewhere than decoding"
        );
    }

    let written = write(&manifest);
    let reread = Manifest::parse(&written).unwrap_or_else(|e| {
        panic!(
            "MAN-2/MAN-3: the written form of an accepted manifest does not parse: {e:?}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(
        reread.head, manifest.head,
        "head changed through write → read"
    );
    assert_eq!(
        reread.tail, manifest.tail,
        "tail changed through write → read"
    );
    assert!(
        reread.outputs().eq(outputs.iter().cloned()),
        "outputs changed through write → read"
    );
    let rewritten = write(&reread);
    assert_eq!(
        rewritten, written,
        "MAN-2: write → read → write is not stable"
    );
}

/// Writes `manifest` into a buffer; writing into a `Vec` cannot fail.
fn write(manifest: &Manifest<'_>) -> Vec<u8> {
    match write_manifest(manifest, Vec::new()) {
        Ok(bytes) => bytes,
        Err(e) => panic!("writing a parsed manifest failed: {e}"),
    }
}
