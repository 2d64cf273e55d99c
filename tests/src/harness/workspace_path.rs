//! Fuzz target `workspace_path` (PATH-1..3, SAFE-1, SAFE-2).
//!
//! The bytes, read as UTF-8 (invalid sequences become U+FFFD, so every
//! input is a path to try), go to [`validate`] and [`WorkspacePath`]. The
//! verdict must agree with a plain model of PATH-1 and PATH-2 written from
//! the SPEC text (with its own general-category lookup), a refusal must
//! name a rule the path really breaks, an accepted path's `relative` and
//! `ancestors` must describe it, and the manifest codec must agree: an
//! accepted path survives a manifest write → read unchanged (escapes
//! included), a refused one cannot be written (PATH-3).

use alloc::string::String;
use alloc::vec::Vec;

use cachet_core::hash::{Digest, HashFunction};
use cachet_core::key::Key;
use cachet_core::manifest::{Manifest, ManifestHead, ManifestTail, ManifestWriter};
use cachet_core::path::{MAX_PATH_BYTES, PathError, WorkspacePath, validate};
use unicode_general_category::{GeneralCategory, get_general_category};

/// PATH-2's forbidden categories: Cc, Cf, Cn, Co, Zl, Zp.
fn forbidden(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// The model: every rule `path` breaks (empty when it is valid).
fn broken_rules(path: &str) -> Vec<PathError> {
    let mut broken = Vec::new();
    if path.is_empty() {
        broken.push(PathError::Empty);
        return broken;
    }
    if path.len() > MAX_PATH_BYTES {
        broken.push(PathError::TooLong);
    }
    let Some(relative) = path.strip_prefix('/') else {
        broken.push(PathError::NotAbsolute);
        return broken;
    };
    if relative.is_empty() {
        broken.push(PathError::Root);
        return broken;
    }
    if relative.ends_with('/') {
        broken.push(PathError::TrailingSlash);
    }
    let segments: Vec<&str> = relative.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            // A trailing slash also makes an empty last segment; that is
            // reported as TrailingSlash.
            "" if i + 1 < segments.len() => broken.push(PathError::EmptySegment),
            "" => {}
            "." => broken.push(PathError::DotSegment),
            ".." => broken.push(PathError::DotDotSegment),
            _ => {
                for character in segment.chars().filter(|&c| forbidden(c)) {
                    broken.push(PathError::ForbiddenCharacter { character });
                }
            }
        }
    }
    broken
}

/// Runs the `workspace_path` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    let path: &str = &path;
    let verdict = validate(path);
    let broken = broken_rules(path);
    match verdict {
        Ok(()) => assert!(
            broken.is_empty(),
            "{path:?} was accepted but breaks {broken:?}"
        ),
        Err(error) => assert!(
            broken.contains(&error),
            "{path:?} was refused with {error:?}, which the model does not see (it sees {broken:?})"
        ),
    }
    assert_eq!(
        WorkspacePath::new(path).is_ok(),
        verdict.is_ok(),
        "WorkspacePath::new disagrees with validate"
    );

    if let Ok(valid) = WorkspacePath::new(path) {
        check_accepted(path, valid);
    }
    check_manifest_agrees(path, verdict.is_ok());
}

/// An accepted path names something strictly below the workspace root
/// (SAFE-2): `relative` drops only the leading `/`, and the ancestors are
/// the proper prefixes ending before each `/`, shallowest first.
fn check_accepted(path: &str, valid: WorkspacePath<'_>) {
    assert_eq!(valid.as_str(), path);
    let relative = valid.relative();
    assert_eq!(Some(relative), path.strip_prefix('/'));
    assert!(!relative.is_empty() && !relative.starts_with('/'));
    let ancestors: Vec<&str> = valid.ancestors().collect();
    let expected: Vec<&str> = relative
        .match_indices('/')
        .map(|(index, _)| &relative[..index])
        .collect();
    assert_eq!(ancestors, expected, "ancestors of {path:?}");
    // Every ancestor is a prefix of the deepest one, so checking that one
    // covers them all (and keeps a 2,000-segment path linear).
    if let Some(deepest) = ancestors.last() {
        assert!(
            validate(&alloc::format!("/{deepest}")).is_ok(),
            "ancestor {deepest:?} of a valid path is invalid"
        );
    }
}

/// PATH-3: the writer refuses exactly the paths validation refuses, and an
/// accepted path comes back from a written manifest unchanged.
fn check_manifest_agrees(path: &str, valid: bool) {
    let head = ManifestHead {
        chapter_revision: 0,
        hash_function: HashFunction::Blake3,
        key: Key(Digest([7; 32])),
    };
    let Ok(mut writer) = ManifestWriter::begin(Vec::new(), &head) else {
        panic!("writing into a Vec failed");
    };
    let written = writer.output(path, &Digest([1; 32]), 3, 0o644);
    if !valid {
        assert!(
            written.is_err(),
            "the writer accepted invalid path {path:?}"
        );
        return;
    }
    assert!(written.is_ok(), "the writer refused valid path {path:?}");
    let tail = ManifestTail {
        stdout_len: 0,
        stderr_len: 0,
        stdout_hash: Digest([2; 32]),
        stderr_hash: Digest([3; 32]),
        exit_status: 0,
        created_at_unix: 1,
    };
    let Ok(bytes) = writer.finish(&tail) else {
        panic!("writing into a Vec failed");
    };
    let manifest = Manifest::parse(&bytes)
        .unwrap_or_else(|e| panic!("a manifest holding valid path {path:?} does not parse: {e:?}"));
    let paths: Vec<String> = manifest
        .outputs()
        .map(|o| String::from(o.path.as_str()))
        .collect();
    assert_eq!(paths, [path], "the path changed through a manifest");
}
