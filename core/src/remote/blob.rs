//! Blob objects (REMOTE-6): an 10-byte header, then the content.
//!
//! ```text
//! blob = "cachetB\0" ‖ u8(format version, 1) ‖ u8(codec: 0 raw, 1 zstd) ‖ body
//! ```
//!
//! A blob is named by the content hash of its raw bytes, whatever the
//! codec. The hash is never trusted: the reader hashes what it decodes
//! (REMOTE-4).

use super::names::FORMAT_VERSION;
use super::{Error, RemoteRead};

/// The first 8 bytes of every blob object.
pub const MAGIC: [u8; 8] = *b"cachetB\0";

/// Length of a blob object's header.
pub const HEADER_LEN: usize = 10;

/// How a blob's body encodes its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// The body is the raw bytes.
    Raw,
    /// The body is one zstd frame of the raw bytes.
    Zstd,
}

impl Codec {
    /// The codec's byte in the header.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }
}

/// The header of a blob whose body is encoded by `codec`.
pub const fn header(codec: Codec) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let mut at = 0;
    while at < MAGIC.len() {
        header[at] = MAGIC[at];
        at += 1;
    }
    header[8] = FORMAT_VERSION;
    header[9] = codec.id();
    header
}

/// Why a blob object cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobError {
    /// The object ended inside its header.
    Truncated,
    /// The object does not start with [`MAGIC`].
    BadMagic,
    /// The object is of another format version (REMOTE-10).
    OtherVersion(u8),
    /// The codec byte names no codec this reader decodes.
    UnsupportedCodec(u8),
    /// Reading the object failed.
    Remote(Error),
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlobError::Truncated => f.write_str("the blob ends inside its header"),
            BlobError::BadMagic => f.write_str("the object is not a cachet blob"),
            BlobError::OtherVersion(v) => write!(f, "the blob is of format version {v}"),
            BlobError::UnsupportedCodec(c) => write!(f, "the blob's codec {c} is not supported"),
            BlobError::Remote(e) => write!(f, "{e}"),
        }
    }
}

/// Reads a blob object: checks the header, then yields the body, which
/// [`BlobReader::codec`] says how to decode.
#[derive(Debug)]
pub struct BlobReader<R> {
    inner: R,
    codec: Codec,
}

impl<R: RemoteRead> BlobReader<R> {
    /// Reads and checks the header of the object `inner` is reading.
    pub fn open(mut inner: R) -> Result<BlobReader<R>, BlobError> {
        let mut head = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            let n = inner
                .read(head.get_mut(filled..).unwrap_or_default())
                .map_err(BlobError::Remote)?;
            if n == 0 {
                return Err(BlobError::Truncated);
            }
            filled += n;
        }
        if head[..8] != MAGIC {
            return Err(BlobError::BadMagic);
        }
        if head[8] != FORMAT_VERSION {
            return Err(BlobError::OtherVersion(head[8]));
        }
        let codec = match head[9] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            codec => return Err(BlobError::UnsupportedCodec(codec)),
        };
        Ok(BlobReader { inner, codec })
    }

    /// How the body encodes the content.
    pub fn codec(&self) -> Codec {
        self.codec
    }
}

impl<R: RemoteRead> RemoteRead for BlobReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Bytes<'a>(&'a [u8]);

    impl RemoteRead for Bytes<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
            // One byte at a time: the header must be assembled from short reads.
            let n = buf.len().min(self.0.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn remote_6_header_is_checked_before_the_body() {
        let mut object = header(Codec::Raw).to_vec();
        object.extend_from_slice(b"body");
        let mut reader = BlobReader::open(Bytes(&object)).unwrap();
        let mut buf = [0u8; 16];
        let mut body = alloc::vec::Vec::new();
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(body, b"body");

        assert_eq!(
            BlobReader::open(Bytes(&object[..9])).unwrap_err(),
            BlobError::Truncated
        );
        let mut other = object.clone();
        other[0] ^= 1;
        assert_eq!(
            BlobReader::open(Bytes(&other)).unwrap_err(),
            BlobError::BadMagic
        );
        let mut other = object.clone();
        other[8] = 2;
        assert_eq!(
            BlobReader::open(Bytes(&other)).unwrap_err(),
            BlobError::OtherVersion(2)
        );
        let zstd = header(Codec::Zstd);
        assert_eq!(BlobReader::open(Bytes(&zstd)).unwrap().codec(), Codec::Zstd);
        let mut other = zstd;
        other[9] = 2;
        assert_eq!(
            BlobReader::open(Bytes(&other)).unwrap_err(),
            BlobError::UnsupportedCodec(2)
        );
    }
}
