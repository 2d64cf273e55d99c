//! Signed records (REMOTE-12, REMOTE-13): a record object wrapped in an
//! envelope that carries a keyed-BLAKE3 MAC, so that a reader holding the
//! signing key accepts only records written by someone who holds it, for
//! the tenant and the key it looked up.
//!
//! ```text
//! signed  = "cachetS\0" ‖ u8(1) ‖ lp(key id) ‖ lp(tenant) ‖ mac (32) ‖ record
//! message = lp("cachet remote record signature") ‖ lp(u8(1)) ‖ lp(key id)
//!         ‖ lp(namespace) ‖ lp(tenant) ‖ lp(entry key, 32 bytes) ‖ lp(record)
//! mac     = BLAKE3 keyed with the 32-byte secret, over message
//! ```
//!
//! The reader computes `message` from what it looked up (its namespace,
//! the tenant it read under, the entry key), never from the envelope, so a
//! record copied under another tenant or key does not verify. The key id
//! and tenant in the envelope only let the reader say which key or tenant
//! the record was signed for.

use alloc::string::String;
use alloc::vec::Vec;

use super::names::{FORMAT_VERSION, Tenant};
use super::record::{MAGIC, RecordError};
use crate::key::Key;

/// The first 8 bytes of a signed record object.
pub const SIGNED_MAGIC: [u8; 8] = *b"cachetS\0";

/// The longest key id (REMOTE-12).
pub const MAX_KEY_ID_BYTES: usize = 32;

/// What the MAC's message starts with, so that it is never the MAC of
/// anything else cachet computes.
const CONTEXT: &[u8] = b"cachet remote record signature";

/// The form `CACHET_REMOTE_SIGNING_KEY` takes, for messages.
pub const EXPECTED_FORM: &str = "expected KEYID:SECRET, KEYID being 1 to 32 of A-Z, a-z, 0-9, '_', '-' and '.' (not starting with '.'), and SECRET 64 hex digits (32 random bytes, e.g. from `openssl rand -hex 32`)";

/// A signing key: a public id, written into every record it signs, and a
/// 32-byte secret (REMOTE-12). Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    id: heapless::String<MAX_KEY_ID_BYTES>,
    secret: [u8; 32],
}

/// Why a text is not a signing key. Never carries the text: it holds the
/// secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// There is no `:` between the id and the secret.
    NoSeparator,
    /// The id is empty, longer than 32 bytes, starts with `.` or holds a
    /// character outside the alphabet.
    BadId,
    /// The secret is not exactly 64 hex digits.
    BadSecret,
}

impl core::fmt::Display for SigningKeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SigningKeyError::NoSeparator => "there is no ':' between the key id and the secret",
            SigningKeyError::BadId => "the key id is not valid",
            SigningKeyError::BadSecret => "the secret is not 64 hex digits",
        })
    }
}

#[cfg(feature = "std")]
impl core::error::Error for SigningKeyError {}

impl SigningKey {
    /// A key of id `id` (the alphabet of tenants, at most 32 bytes) and
    /// `secret`.
    pub fn new(id: &str, secret: [u8; 32]) -> Result<SigningKey, SigningKeyError> {
        if id.len() > MAX_KEY_ID_BYTES || Tenant::new(id).is_err() {
            return Err(SigningKeyError::BadId);
        }
        let mut owned = heapless::String::new();
        owned.push_str(id).map_err(|_| SigningKeyError::BadId)?;
        Ok(SigningKey { id: owned, secret })
    }

    /// Parses `KEYID:SECRET` ([`EXPECTED_FORM`]), surrounding whitespace
    /// ignored.
    pub fn parse(text: &str) -> Result<SigningKey, SigningKeyError> {
        let (id, secret) = text
            .trim()
            .split_once(':')
            .ok_or(SigningKeyError::NoSeparator)?;
        let secret =
            crate::hex::decode_32(secret.as_bytes()).map_err(|_| SigningKeyError::BadSecret)?;
        SigningKey::new(id, secret)
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The MAC of `record` stored under `namespace`, `tenant` and
    /// `entry_key`, by this key.
    fn mac(
        &self,
        namespace: &str,
        tenant: &Tenant,
        entry_key: &Key,
        record: &[u8],
    ) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        for part in [
            CONTEXT,
            &[FORMAT_VERSION],
            self.id.as_bytes(),
            namespace.as_bytes(),
            tenant.as_str().as_bytes(),
            &entry_key.0.0,
            record,
        ] {
            // Every part is far below 4 GiB: records are capped well under
            // it (REMOTE-7), the rest are names.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            hasher.update(&len.to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize()
    }

    /// The signed object of `record` (REMOTE-12): the envelope, then the
    /// record's bytes.
    pub fn sign(
        &self,
        namespace: &str,
        tenant: &Tenant,
        entry_key: &Key,
        record: &[u8],
    ) -> Vec<u8> {
        let mac = self.mac(namespace, tenant, entry_key, record);
        let mut out = Vec::with_capacity(
            SIGNED_MAGIC.len() + 1 + 8 + self.id.len() + tenant.as_str().len() + 32 + record.len(),
        );
        out.extend_from_slice(&SIGNED_MAGIC);
        out.push(FORMAT_VERSION);
        for name in [self.id.as_bytes(), tenant.as_str().as_bytes()] {
            // Both are at most 64 bytes.
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name);
        }
        out.extend_from_slice(mac.as_bytes());
        out.extend_from_slice(record);
        out
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id.as_str())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &SigningKey) -> bool {
        self.id == other.id && blake3::Hash::from(self.secret) == blake3::Hash::from(other.secret)
    }
}

impl Eq for SigningKey {}

/// Why a record object was refused for its signature, or for its envelope
/// (REMOTE-13). Each is a miss on that remote, never an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureMiss {
    /// The reader has a signing key and the record is not signed.
    Unsigned,
    /// The record is signed with another key id.
    OtherSigningKey {
        /// The id the record names.
        key_id: String,
    },
    /// The record is signed for another tenant than the one it was read
    /// under.
    OtherTenant {
        /// The tenant the record names.
        tenant: String,
    },
    /// The MAC does not verify: the record was altered, moved to another
    /// entry key, or signed with another secret under the same id.
    Mismatch,
    /// The envelope is malformed or of another format version.
    Malformed(RecordError),
}

impl core::fmt::Display for SignatureMiss {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SignatureMiss::Unsigned => {
                f.write_str("the record is not signed and a signing key is set")
            }
            SignatureMiss::OtherSigningKey { key_id } => {
                write!(f, "the record is signed with key id '{key_id}', not ours")
            }
            SignatureMiss::OtherTenant { tenant } => {
                write!(f, "the record is signed for tenant '{tenant}'")
            }
            SignatureMiss::Mismatch => f.write_str(
                "the record's signature does not verify (altered, moved from another key, or signed with another secret)",
            ),
            SignatureMiss::Malformed(error) => write!(f, "bad signature envelope: {error}"),
        }
    }
}

/// The record inside `object`, as REMOTE-13 lets a reader see it: with a
/// `signing_key`, only a record signed by it for `namespace`, `tenant` and
/// `entry_key`; without one, an unsigned record as it is and a signed one
/// with its envelope set aside.
pub fn open<'a>(
    object: &'a [u8],
    signing_key: Option<&SigningKey>,
    namespace: &str,
    tenant: &Tenant,
    entry_key: &Key,
) -> Result<&'a [u8], SignatureMiss> {
    let Some(envelope) = Envelope::parse(object)? else {
        return match signing_key {
            Some(_) => Err(SignatureMiss::Unsigned),
            None => Ok(object),
        };
    };
    let Some(signing_key) = signing_key else {
        return Ok(envelope.record);
    };
    if envelope.key_id != signing_key.id() {
        return Err(SignatureMiss::OtherSigningKey {
            key_id: String::from(envelope.key_id),
        });
    }
    if envelope.tenant != tenant.as_str() {
        return Err(SignatureMiss::OtherTenant {
            tenant: String::from(envelope.tenant),
        });
    }
    let expected = signing_key.mac(namespace, tenant, entry_key, envelope.record);
    // `blake3::Hash`'s equality is constant-time.
    if expected != blake3::Hash::from(envelope.mac) {
        return Err(SignatureMiss::Mismatch);
    }
    Ok(envelope.record)
}

/// A parsed signed object.
struct Envelope<'a> {
    key_id: &'a str,
    tenant: &'a str,
    mac: [u8; 32],
    record: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// The envelope of `object`, `None` when it is an unsigned record (or
    /// anything else, left for the record codec to refuse).
    fn parse(object: &'a [u8]) -> Result<Option<Envelope<'a>>, SignatureMiss> {
        let malformed = SignatureMiss::Malformed;
        let Some(rest) = object.strip_prefix(&SIGNED_MAGIC) else {
            return Ok(None);
        };
        let (&version, mut rest) = rest
            .split_first()
            .ok_or(malformed(RecordError::Truncated))?;
        if version != FORMAT_VERSION {
            return Err(malformed(RecordError::OtherVersion(version)));
        }
        let mut name = || -> Result<&'a str, SignatureMiss> {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or(malformed(RecordError::Truncated))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len > super::names::MAX_TENANT_BYTES {
                return Err(malformed(RecordError::BadSignatureHeader));
            }
            let (bytes, tail) = tail
                .split_at_checked(len)
                .ok_or(malformed(RecordError::Truncated))?;
            rest = tail;
            let text = core::str::from_utf8(bytes)
                .map_err(|_| malformed(RecordError::BadSignatureHeader))?;
            Tenant::new(text).map_err(|_| malformed(RecordError::BadSignatureHeader))?;
            Ok(text)
        };
        let key_id = name()?;
        let tenant = name()?;
        if key_id.len() > MAX_KEY_ID_BYTES {
            return Err(malformed(RecordError::BadSignatureHeader));
        }
        let (mac, record) = rest
            .split_first_chunk::<32>()
            .ok_or(malformed(RecordError::Truncated))?;
        if !record.starts_with(&MAGIC) {
            return Err(malformed(RecordError::BadMagic));
        }
        Ok(Some(Envelope {
            key_id,
            tenant,
            mac: *mac,
            record,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Digest;
    use proptest::prelude::*;

    fn signing_key(id: &str, byte: u8) -> SigningKey {
        SigningKey::new(id, [byte; 32]).unwrap()
    }

    const NS: &str = "cachet-v1-blake3";
    const RECORD: &[u8] = b"cachetR\0 stands in for a record here";

    #[test]
    fn remote_12_keys_parse_from_keyid_colon_hex_and_never_show_the_secret() {
        let text = alloc::format!("ci-2026:{}", "AB".repeat(32));
        let parsed = SigningKey::parse(&text).unwrap();
        assert_eq!(parsed, signing_key("ci-2026", 0xab));
        assert_eq!(parsed.id(), "ci-2026");
        let shown = alloc::format!("{parsed:?}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        for (bad, why) in [
            ("ab".repeat(32), SigningKeyError::NoSeparator),
            (
                alloc::format!(":{}", "ab".repeat(32)),
                SigningKeyError::BadId,
            ),
            (
                alloc::format!(".x:{}", "ab".repeat(32)),
                SigningKeyError::BadId,
            ),
            (
                alloc::format!("{}:{}", "k".repeat(33), "ab".repeat(32)),
                SigningKeyError::BadId,
            ),
            (
                alloc::format!("k/1:{}", "ab".repeat(32)),
                SigningKeyError::BadId,
            ),
            (
                alloc::format!("k:{}", "ab".repeat(31)),
                SigningKeyError::BadSecret,
            ),
            (
                alloc::format!("k:{}g", "ab".repeat(31)),
                SigningKeyError::BadSecret,
            ),
            (String::from("k:passphrase"), SigningKeyError::BadSecret),
        ] {
            assert_eq!(SigningKey::parse(&bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn remote_12_a_signed_record_opens_under_its_own_key_tenant_and_entry_key() {
        let k = signing_key("k1", 1);
        let main = Tenant::new("main").unwrap();
        let entry = Key(Digest([5; 32]));
        let signed = k.sign(NS, &main, &entry, RECORD);
        assert_eq!(open(&signed, Some(&k), NS, &main, &entry), Ok(RECORD));
        // A reader without a key sees the record inside.
        assert_eq!(open(&signed, None, NS, &main, &entry), Ok(RECORD));
        assert_eq!(open(RECORD, None, NS, &main, &entry), Ok(RECORD));
    }

    #[test]
    fn remote_13_unsigned_other_key_other_secret_other_tenant_other_entry_key_are_refused() {
        let k = signing_key("k1", 1);
        let main = Tenant::new("main").unwrap();
        let pr = Tenant::new("pr-1").unwrap();
        let entry = Key(Digest([5; 32]));
        let signed = k.sign(NS, &main, &entry, RECORD);
        assert_eq!(
            open(RECORD, Some(&k), NS, &main, &entry),
            Err(SignatureMiss::Unsigned)
        );
        assert_eq!(
            open(&signed, Some(&signing_key("k2", 1)), NS, &main, &entry),
            Err(SignatureMiss::OtherSigningKey {
                key_id: String::from("k1")
            })
        );
        assert_eq!(
            open(&signed, Some(&signing_key("k1", 2)), NS, &main, &entry),
            Err(SignatureMiss::Mismatch)
        );
        assert_eq!(
            open(&signed, Some(&k), NS, &pr, &entry),
            Err(SignatureMiss::OtherTenant {
                tenant: String::from("main")
            })
        );
        assert_eq!(
            open(&signed, Some(&k), NS, &main, &Key(Digest([6; 32]))),
            Err(SignatureMiss::Mismatch)
        );
        assert_eq!(
            open(&signed, Some(&k), "cachet-v1-sha256", &main, &entry),
            Err(SignatureMiss::Mismatch)
        );
        // A tenant rewritten in the envelope does not help: the MAC covers
        // the tenant the reader read under.
        let forged = k.sign(NS, &pr, &entry, RECORD);
        let mut relabelled = forged.clone();
        let at = SIGNED_MAGIC.len() + 1 + 4 + 2 + 4;
        relabelled.splice(at..at + 4, *b"main");
        assert_eq!(
            open(&relabelled, Some(&k), NS, &main, &entry),
            Err(SignatureMiss::Mismatch)
        );
    }

    #[test]
    fn remote_13_every_flipped_byte_and_every_truncation_is_refused() {
        let k = signing_key("k1", 1);
        let main = Tenant::new("main").unwrap();
        let entry = Key(Digest([5; 32]));
        let signed = k.sign(NS, &main, &entry, RECORD);
        for at in 0..signed.len() {
            let mut bad = signed.clone();
            bad[at] ^= 0x01;
            assert!(
                open(&bad, Some(&k), NS, &main, &entry).is_err(),
                "flip at {at}"
            );
        }
        for len in 0..signed.len() {
            assert!(
                open(&signed[..len], Some(&k), NS, &main, &entry).is_err(),
                "prefix of {len}"
            );
        }
    }

    proptest! {
        #[test]
        fn safe_1_arbitrary_envelopes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            version in any::<bool>(),
        ) {
            let mut object = SIGNED_MAGIC.to_vec();
            if version {
                object.push(FORMAT_VERSION);
            }
            object.extend_from_slice(&tail);
            let k = signing_key("k1", 1);
            let main = Tenant::new("main").unwrap();
            let entry = Key(Digest([5; 32]));
            let _ = open(&object, Some(&k), NS, &main, &entry);
            let _ = open(&object, None, NS, &main, &entry);
        }
    }
}
