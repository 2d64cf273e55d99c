//! Adapters between `std::io` and the core's byte streams.

use std::io;

use cachet_core::fs;

/// A `std::io::Write` as the core's [`fs::Write`], e.g. to replay streams
/// into this process's stdout.
pub struct StdWrite<'a>(pub &'a mut dyn io::Write);

impl fs::Write for StdWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, fs::Error> {
        loop {
            match self.0.write(buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(fs::Error::from),
            }
        }
    }
}

impl core::fmt::Debug for StdWrite<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StdWrite")
    }
}

/// A `std::io::Read` as the core's [`fs::Read`], e.g. a captured stream in
/// a temporary file.
#[derive(Debug)]
pub struct StdRead<R>(pub R);

impl<R: io::Read> fs::Read for StdRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, fs::Error> {
        loop {
            match self.0.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(fs::Error::from),
            }
        }
    }
}

/// Either a readable stream or nothing: an absent `--stdout-file` is an
/// empty stream.
#[derive(Debug)]
pub(crate) enum MaybeRead<R> {
    Some(R),
    Empty,
}

impl<R: fs::Read> fs::Read for MaybeRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, fs::Error> {
        match self {
            MaybeRead::Some(reader) => reader.read(buf),
            MaybeRead::Empty => Ok(0),
        }
    }
}
