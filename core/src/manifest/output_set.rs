//! SAFE-5..9: which output paths an entry may list together.
//!
//! Each path of an entry is valid on its own (PATH-3); these rules are about
//! the set. No store writes an entry that breaks one of them, so a reader
//! that meets one, in a manifest or a remote record, takes the entry for
//! corrupt: a miss that writes nothing (SAFE-9).
//!
//! - SAFE-5: no path twice;
//! - SAFE-6: no path below another output's path (`/a` and `/a/b`);
//! - SAFE-7: no path with a segment `.git`, which SEL-2 never selects;
//! - SAFE-8: no path that is the cache directory, below it or above it,
//!   when the cache directory lies inside the workspace.
//!
//! [`OutputSetCheck`] takes the paths one at a time, with no allocation: it
//! is fed each output as a manifest is parsed or a record decoded. SAFE-7
//! and SAFE-8 are judged path by path. SAFE-5 and SAFE-6 are judged in one
//! pass when the paths come sorted by bytes, as every store and every
//! record lists them: an ancestor `/a` sorts before everything below it,
//! and only paths that start with the bytes `/a` come in between, so a chain
//! of the earlier paths that are byte prefixes of the latest one is all the
//! check needs to remember. A manifest may list its outputs in any order
//! (MAN-1, haz-cache's own entries do); for one that is not sorted,
//! [`check_outputs`] (with the `alloc` feature) collects and sorts the
//! paths and checks them again.

use crate::path::MAX_PATH_BYTES;

/// Why a set of output paths cannot be an entry's (SAFE-5..8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputConflict {
    /// SAFE-5: the path is listed twice.
    Repeated,
    /// SAFE-6: the path lies below another output's path, which would have
    /// to be a directory and a regular file at once.
    Nested,
    /// SAFE-7: a segment of the path is `.git`.
    InGitDir,
    /// SAFE-8: the path is the cache directory, lies below it, or names a
    /// directory that holds it.
    InCacheDir,
}

impl OutputConflict {
    /// The spec rule the conflict breaks.
    pub const fn rule(self) -> &'static str {
        match self {
            OutputConflict::Repeated => "SAFE-5",
            OutputConflict::Nested => "SAFE-6",
            OutputConflict::InGitDir => "SAFE-7",
            OutputConflict::InCacheDir => "SAFE-8",
        }
    }
}

impl core::fmt::Display for OutputConflict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self {
            OutputConflict::Repeated => "is listed twice",
            OutputConflict::Nested => "lies below another output",
            OutputConflict::InGitDir => "lies in a `.git` directory, which is never stored",
            OutputConflict::InCacheDir => {
                "lies in, or holds, the cache directory, which is never stored"
            }
        };
        write!(f, "{what} ({})", self.rule())
    }
}

/// How long the chain of [`OutputSetCheck`] can get: each link is a
/// strictly longer valid path than the one before.
const MAX_CHAIN: usize = MAX_PATH_BYTES;

/// Checks output paths against SAFE-5..8 one at a time (see the module
/// docs), in bounded memory.
#[derive(Clone, Debug)]
pub struct OutputSetCheck<'c> {
    /// The cache directory relative to the workspace root, without leading
    /// or trailing `/`, when it lies inside the workspace.
    cache_dir: Option<&'c str>,
    /// The path checked last.
    previous: heapless::String<MAX_PATH_BYTES>,
    /// The lengths of the earlier paths that are byte prefixes of
    /// `previous` (itself last), shortest first: the only earlier paths a
    /// later, greater path can lie below.
    chain: heapless::Vec<u16, MAX_CHAIN>,
    /// Whether every path so far came after the one before it in byte
    /// order; if not, SAFE-5 and SAFE-6 are left to [`check_outputs`].
    sorted: bool,
}

impl<'c> OutputSetCheck<'c> {
    /// A check for the outputs of one entry. `cache_dir` is the cache
    /// directory's path relative to the workspace root (`.cachet`,
    /// `.haz/cache`) when it lies inside the workspace (SAFE-8).
    pub fn new(cache_dir: Option<&'c str>) -> OutputSetCheck<'c> {
        OutputSetCheck {
            cache_dir: cache_dir
                .map(|dir| dir.trim_matches('/'))
                .filter(|dir| !dir.is_empty()),
            previous: heapless::String::new(),
            chain: heapless::Vec::new(),
            sorted: true,
        }
    }

    /// Checks the next output path, a valid workspace path (PATH-1). The
    /// first conflict found is returned; after one, the verdict is in and
    /// further calls say nothing new.
    pub fn check(&mut self, path: &str) -> Result<(), OutputConflict> {
        let relative = path.strip_prefix('/').unwrap_or(path);
        if relative.split('/').any(|segment| segment == ".git") {
            return Err(OutputConflict::InGitDir);
        }
        if let Some(dir) = self.cache_dir
            && (within(relative, dir) || within(dir, relative))
        {
            return Err(OutputConflict::InCacheDir);
        }
        if !self.sorted {
            return Ok(());
        }
        if !self.chain.is_empty() {
            match self.previous.as_bytes().cmp(path.as_bytes()) {
                core::cmp::Ordering::Equal => return Err(OutputConflict::Repeated),
                core::cmp::Ordering::Greater => {
                    self.sorted = false;
                    return Ok(());
                }
                core::cmp::Ordering::Less => {}
            }
        }
        let previous = self.previous.as_bytes();
        while let Some(&len) = self.chain.last() {
            match previous.get(..usize::from(len)) {
                Some(prefix) if path.as_bytes().starts_with(prefix) => break,
                _ => {
                    self.chain.pop();
                }
            }
        }
        // Only the longest earlier prefix needs a look: a shorter one that
        // `path` lay below would lie above that one too, a conflict found
        // when it was checked.
        if let Some(&len) = self.chain.last()
            && path.as_bytes().get(usize::from(len)) == Some(&b'/')
        {
            return Err(OutputConflict::Nested);
        }
        self.previous.clear();
        // Valid paths fit (PATH-1); a longer one could not be below any
        // other, and is simply not remembered.
        if self.previous.push_str(path).is_ok() {
            let len = u16::try_from(path.len()).unwrap_or(u16::MAX);
            if self.chain.push(len).is_err() {
                self.chain.clear();
            }
        } else {
            self.chain.clear();
        }
        Ok(())
    }

    /// Whether the paths checked so far came sorted by bytes, so that
    /// [`OutputSetCheck::check`] has judged SAFE-5 and SAFE-6 as well; if
    /// not, only SAFE-7 and SAFE-8 are judged, and the paths need sorting
    /// ([`check_outputs`]).
    pub fn judged_every_rule(&self) -> bool {
        self.sorted
    }
}

/// Whether the relative path `path` is `dir` or lies below it.
fn within(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// SAFE-5..8 over the outputs of a parsed manifest, in any order: one pass
/// when they are sorted by path bytes (as every store writes them), else a
/// second one over the sorted paths, collected into one buffer.
#[cfg(feature = "alloc")]
pub fn check_outputs(
    outputs: super::Outputs<'_>,
    cache_dir: Option<&str>,
) -> Result<(), OutputConflict> {
    use alloc::string::String;
    use alloc::vec::Vec;

    let mut check = OutputSetCheck::new(cache_dir);
    let mut record = super::OutputRecord::empty();
    let mut pass = outputs.clone();
    while pass.next_into(&mut record) {
        check.check(&record.path)?;
    }
    if check.judged_every_rule() {
        return Ok(());
    }
    let mut text = String::new();
    let mut spans: Vec<core::ops::Range<usize>> = Vec::with_capacity(outputs.len());
    let mut pass = outputs;
    while pass.next_into(&mut record) {
        let start = text.len();
        text.push_str(&record.path);
        spans.push(start..text.len());
    }
    let path = |span: &core::ops::Range<usize>| text.get(span.clone()).unwrap_or_default();
    spans.sort_unstable_by(|a, b| path(a).as_bytes().cmp(path(b).as_bytes()));
    let mut sorted = OutputSetCheck::new(cache_dir);
    for span in &spans {
        sorted.check(path(span))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use alloc::string::String;
    use alloc::vec::Vec;

    /// SAFE-5..8 by their definitions, pair by pair.
    fn naive(paths: &[&str], cache_dir: Option<&str>) -> Option<OutputConflict> {
        let below = |path: &str, dir: &str| {
            path.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        for path in paths {
            if path.split('/').any(|segment| segment == ".git") {
                return Some(OutputConflict::InGitDir);
            }
            if let Some(dir) = cache_dir.map(|dir| dir.trim_matches('/'))
                && !dir.is_empty()
            {
                let dir = alloc::format!("/{dir}");
                if *path == dir || below(path, &dir) || below(&dir, path) {
                    return Some(OutputConflict::InCacheDir);
                }
            }
        }
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                if a == b {
                    return Some(OutputConflict::Repeated);
                }
                if below(a, b) || below(b, a) {
                    return Some(OutputConflict::Nested);
                }
            }
        }
        None
    }

    /// What [`OutputSetCheck`] finds in `paths` in the order given, then
    /// sorted when it could not judge every rule (as [`check_outputs`]).
    fn checked(paths: &[&str], cache_dir: Option<&str>) -> Option<OutputConflict> {
        let mut check = OutputSetCheck::new(cache_dir);
        for path in paths {
            if let Err(conflict) = check.check(path) {
                return Some(conflict);
            }
        }
        if check.judged_every_rule() {
            return None;
        }
        let mut sorted = paths.to_vec();
        sorted.sort_unstable();
        let mut check = OutputSetCheck::new(cache_dir);
        sorted.iter().find_map(|path| check.check(path).err())
    }

    #[test]
    fn safe_5_to_8_each_rule_in_sorted_and_unsorted_order() {
        use OutputConflict::*;
        let cases: &[(&[&str], Option<&str>, Option<OutputConflict>)] = &[
            (&["/out/a", "/out/b"], None, None),
            (&["/out/b", "/out/a"], None, None),
            (&["/out/a", "/out/a"], None, Some(Repeated)),
            (&["/out/b", "/out/a", "/out/b"], None, Some(Repeated)),
            (&["/out/a", "/out/a/b"], None, Some(Nested)),
            (&["/out/a/b", "/out/a"], None, Some(Nested)),
            // Paths that sort between an ancestor and what lies below it.
            (
                &["/out/a", "/out/a!x", "/out/a.b", "/out/a/b"],
                None,
                Some(Nested),
            ),
            (
                &["/out/a", "/out/a!x/y", "/out/a-b", "/out/a/b/c"],
                None,
                Some(Nested),
            ),
            (&["/out/a", "/out/a!x", "/out/a.b", "/out/ab"], None, None),
            (&["/a", "/a b/c", "/ab/a"], None, None),
            (&["/.git/hooks/pre-commit"], None, Some(InGitDir)),
            (&["/sub/.git"], None, Some(InGitDir)),
            (&["/sub/.git/config", "/a"], None, Some(InGitDir)),
            (
                &["/.gitignore", "/.github/x", "/x.git/y", "/.git-x"],
                None,
                None,
            ),
            (&["/.cachet/ab/x"], Some(".cachet"), Some(InCacheDir)),
            (&["/.cachet"], Some(".cachet"), Some(InCacheDir)),
            (&["/.cachet/ab/x"], None, None),
            (&["/.cachetx", "/x/.cachet"], Some(".cachet"), None),
            (&["/.haz"], Some(".haz/cache"), Some(InCacheDir)),
            (&["/.haz/cache/ab/x"], Some(".haz/cache"), Some(InCacheDir)),
            (&["/.haz/other", "/.haz/cachet"], Some(".haz/cache"), None),
            (&["/.haz/cache/x"], Some("/.haz/cache/"), Some(InCacheDir)),
            (&["/x"], Some(""), None),
        ];
        for (paths, cache_dir, want) in cases {
            assert_eq!(naive(paths, *cache_dir), *want, "naive {paths:?}");
            assert_eq!(checked(paths, *cache_dir), *want, "{paths:?} {cache_dir:?}");
        }
    }

    #[test]
    fn safe_5_and_6_agree_with_the_definitions_on_random_sets() {
        // Paths over a tiny alphabet, so that repeats, ancestors and paths
        // sorting between an ancestor and its descendants are common.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut conflicts = 0;
        for _ in 0..20_000 {
            let count = 1 + next(5) as usize;
            let owned: Vec<String> = (0..count)
                .map(|_| {
                    let mut path = String::new();
                    for _ in 0..1 + next(3) {
                        path.push('/');
                        for _ in 0..1 + next(2) {
                            path.push(['a', 'b', '!', '.'][next(4) as usize]);
                        }
                    }
                    path
                })
                .filter(|path| crate::path::validate(path).is_ok())
                .collect();
            let paths: Vec<&str> = owned.iter().map(String::as_str).collect();
            let want = naive(&paths, None);
            conflicts += usize::from(want.is_some());
            // Which conflict is found first may differ; whether there is one
            // may not.
            assert_eq!(checked(&paths, None).is_some(), want.is_some(), "{paths:?}");
            let mut sorted = paths.clone();
            sorted.sort_unstable();
            assert_eq!(
                checked(&sorted, None).is_some(),
                want.is_some(),
                "{sorted:?}"
            );
        }
        assert!(
            (2_000..18_000).contains(&conflicts),
            "{conflicts} conflicts"
        );
    }
}
