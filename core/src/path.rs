//! Workspace-absolute paths (SPEC PATH-1..3).
//!
//! Output paths in a manifest name files relative to the workspace root, in
//! the form `/seg/seg/...`. Validation is the first line of SAFE-2: a path
//! that passes can only name something below the workspace root, and holds
//! no character that could disguise what it names (controls, bidi overrides,
//! zero-width marks, unassigned or private-use code points). The Unicode
//! general categories come from `unicode-general-category`.
//!
//! cachet is stricter than haz-cache in one respect: a path longer than
//! [`MAX_PATH_BYTES`] (Linux's `PATH_MAX`) is invalid, so that decoded paths
//! fit a fixed buffer and no input can demand unbounded memory (SAFE-1).

use unicode_general_category::{GeneralCategory, get_general_category};

/// The longest valid workspace path, in UTF-8 bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a workspace path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The empty string.
    Empty,
    /// The path does not start with `/` (PATH-1).
    NotAbsolute,
    /// The bare `/`, which names the workspace itself (PATH-1).
    Root,
    /// Two consecutive slashes (PATH-1).
    EmptySegment,
    /// A `/` at the end (PATH-1).
    TrailingSlash,
    /// A `.` segment (PATH-2).
    DotSegment,
    /// A `..` segment (PATH-2).
    DotDotSegment,
    /// A character of general category Cc, Cf, Cn, Co, Zl or Zp (PATH-2).
    ForbiddenCharacter {
        /// The character.
        character: char,
    },
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl core::fmt::Display for PathError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PathError::Empty => f.write_str("the path is empty"),
            PathError::NotAbsolute => f.write_str("the path does not start with '/'"),
            PathError::Root => f.write_str("the path is '/', which names the workspace itself"),
            PathError::EmptySegment => f.write_str("the path contains '//'"),
            PathError::TrailingSlash => f.write_str("the path ends with '/'"),
            PathError::DotSegment => f.write_str("the path contains a '.' segment"),
            PathError::DotDotSegment => f.write_str("the path contains a '..' segment"),
            PathError::ForbiddenCharacter { character } => write!(
                f,
                "the path contains U+{:04X}, a control, format, unassigned, private-use or separator character",
                u32::from(*character)
            ),
            PathError::TooLong => write!(f, "the path is longer than {MAX_PATH_BYTES} bytes"),
        }
    }
}

#[cfg(feature = "std")]
impl core::error::Error for PathError {}

/// Whether PATH-2 forbids `character` anywhere in a segment.
pub fn is_forbidden_character(character: char) -> bool {
    // Most paths are ASCII, where the only forbidden category is Cc; the
    // table lookup below is for the rest (and agrees on ASCII).
    if character.is_ascii() {
        return character.is_ascii_control();
    }
    matches!(
        get_general_category(character),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Checks one segment against PATH-2 (the caller has split on `/`).
pub fn validate_segment(segment: &str) -> Result<(), PathError> {
    match segment {
        "" => Err(PathError::EmptySegment),
        "." => Err(PathError::DotSegment),
        ".." => Err(PathError::DotDotSegment),
        _ => match segment.chars().find(|&c| is_forbidden_character(c)) {
            Some(character) => Err(PathError::ForbiddenCharacter { character }),
            None => Ok(()),
        },
    }
}

/// Checks `path` against PATH-1 and PATH-2.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let Some(relative) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    if relative.is_empty() {
        return Err(PathError::Root);
    }
    if relative.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    relative.split('/').try_for_each(validate_segment)
}

/// A path that passed [`validate`]: workspace-absolute, below the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspacePath<'a>(&'a str);

impl<'a> WorkspacePath<'a> {
    /// Validates `path` (PATH-1, PATH-2).
    pub fn new(path: &'a str) -> Result<WorkspacePath<'a>, PathError> {
        validate(path).map(|()| WorkspacePath(path))
    }

    /// The path as written, with its leading `/`.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The path relative to the workspace root: without the leading `/`, as
    /// a [`crate::fs::Filesystem`] takes it.
    pub fn relative(&self) -> &'a str {
        &self.0[1..]
    }

    /// Relative paths of every ancestor directory below the root, shallowest
    /// first: `/a/b/c` gives `a`, then `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &'a str> {
        let relative = self.relative();
        relative
            .match_indices('/')
            .map(move |(index, _)| &relative[..index])
    }
}

impl core::fmt::Display for WorkspacePath<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_1_shape() {
        assert_eq!(validate("/a"), Ok(()));
        assert_eq!(validate("/a/b/c.txt"), Ok(()));
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(validate("/"), Err(PathError::Root));
        assert_eq!(validate("/a//b"), Err(PathError::EmptySegment));
        assert_eq!(validate("//a"), Err(PathError::EmptySegment));
        assert_eq!(validate("/a/"), Err(PathError::TrailingSlash));
    }

    #[test]
    fn path_2_segments() {
        assert_eq!(validate("/a/./b"), Err(PathError::DotSegment));
        assert_eq!(validate("/../x"), Err(PathError::DotDotSegment));
        assert_eq!(validate("/a/.."), Err(PathError::DotDotSegment));
        for fine in [
            "/...",
            "/.hidden",
            "/ ",
            "/a b/c",
            "/日本/🦀",
            "/..\\x",
            "/C:",
        ] {
            assert_eq!(validate(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn path_2_forbidden_categories() {
        for (bad, character) in [
            ("/a\tb", '\t'),             // Cc
            ("/a\u{85}b", '\u{85}'),     // Cc (C1)
            ("/a\u{202e}b", '\u{202e}'), // Cf, bidi override
            ("/a\u{200b}b", '\u{200b}'), // Cf, zero-width space
            ("/a\u{feff}b", '\u{feff}'), // Cf, BOM
            ("/a\u{ad}b", '\u{ad}'),     // Cf, soft hyphen
            ("/a\u{e000}b", '\u{e000}'), // Co
            ("/a\u{fffe}b", '\u{fffe}'), // Cn, noncharacter
            ("/a\u{2028}b", '\u{2028}'), // Zl
            ("/a\u{2029}b", '\u{2029}'), // Zp
        ] {
            assert_eq!(
                validate(bad),
                Err(PathError::ForbiddenCharacter { character }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn path_2_ascii_fast_path_agrees_with_the_category_table() {
        for byte in 0u8..=0x7f {
            let character = char::from(byte);
            let by_table = matches!(get_general_category(character), GeneralCategory::Control);
            assert_eq!(is_forbidden_character(character), by_table, "{byte:#x}");
        }
    }

    #[test]
    fn path_length_cap() {
        let mut long = heapless::String::<5000>::new();
        while long.len() < MAX_PATH_BYTES {
            let _ = long.push_str("/a");
        }
        assert_eq!(validate(&long), Ok(()));
        let _ = long.push('b');
        assert_eq!(validate(&long), Err(PathError::TooLong));
    }

    #[test]
    fn ancestors_shallowest_first() {
        let path = WorkspacePath::new("/a/b/c").unwrap();
        let mut ancestors = path.ancestors();
        assert_eq!(ancestors.next(), Some("a"));
        assert_eq!(ancestors.next(), Some("a/b"));
        assert_eq!(ancestors.next(), None);
        assert_eq!(path.relative(), "a/b/c");
    }
}
