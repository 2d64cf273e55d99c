//! Where objects live on a remote (REMOTE-5): one pure function per kind of
//! object, and the tenant name.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::hash::{Digest, HashFunction};
use crate::key::Key;

/// The remote format version (REMOTE-10): in every namespace and in the
/// header of every blob and record.
pub const FORMAT_VERSION: u8 = 1;

/// The namespace of every object of `function`: `cachet-v1-blake3`.
pub fn namespace(function: HashFunction) -> String {
    let mut name = String::new();
    let _ = write!(name, "cachet-v{FORMAT_VERSION}-{}", function.name());
    name
}

/// `<namespace>/blobs/<hh>/<content hash hex>` (REMOTE-5, REMOTE-6).
pub fn blob(function: HashFunction, content_hash: &Digest) -> String {
    let hex = content_hash.to_hex();
    let mut name = namespace(function);
    let _ = write!(name, "/blobs/{}/{}", &hex[..2], hex.as_str());
    name
}

/// `<namespace>/tenants/<tenant>/entries/<kk>/<key hex>` (REMOTE-5,
/// REMOTE-7).
pub fn record(function: HashFunction, tenant: &Tenant, key: &Key) -> String {
    let hex = key.to_hex();
    let mut name = namespace(function);
    let _ = write!(
        name,
        "/tenants/{}/entries/{}/{}",
        tenant.as_str(),
        &hex[..2],
        hex.as_str()
    );
    name
}

/// `<namespace>/tenants/<tenant>/entries/`: where [`record`] puts every
/// record of a tenant, for listing.
pub fn records_prefix(function: HashFunction, tenant: &Tenant) -> String {
    let mut name = namespace(function);
    let _ = write!(name, "/tenants/{}/entries/", tenant.as_str());
    name
}

/// The longest tenant name (REMOTE-5).
pub const MAX_TENANT_BYTES: usize = 64;

/// A tenant: 1 to 64 bytes of `A`–`Z`, `a`–`z`, `0`–`9`, `_`, `-`, `.`,
/// not starting with `.` (REMOTE-5). Every lookup and push is bound to one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tenant(heapless::String<MAX_TENANT_BYTES>);

/// Why a tenant name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_TENANT_BYTES`].
    TooLong,
    /// The name starts with `.`.
    LeadingDot,
    /// The name holds a character outside the alphabet.
    BadCharacter,
}

impl core::fmt::Display for TenantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TenantError::Empty => "it is empty",
            TenantError::TooLong => "it is longer than 64 bytes",
            TenantError::LeadingDot => "it starts with '.'",
            TenantError::BadCharacter => "only A-Z, a-z, 0-9, '_', '-' and '.' are allowed",
        })
    }
}

#[cfg(feature = "std")]
impl core::error::Error for TenantError {}

impl Tenant {
    /// The default tenant, `local`.
    pub fn local() -> Tenant {
        let mut name = heapless::String::new();
        let _ = name.push_str("local");
        Tenant(name)
    }

    /// `name` as a tenant, if REMOTE-5 allows it.
    pub fn new(name: &str) -> Result<Tenant, TenantError> {
        if name.is_empty() {
            return Err(TenantError::Empty);
        }
        if name.len() > MAX_TENANT_BYTES {
            return Err(TenantError::TooLong);
        }
        if name.starts_with('.') {
            return Err(TenantError::LeadingDot);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(TenantError::BadCharacter);
        }
        let mut owned = heapless::String::new();
        owned.push_str(name).map_err(|_| TenantError::TooLong)?;
        Ok(Tenant(owned))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenants a run reads, in the order it reads them (REMOTE-11): its
/// own `tenant` first, then each of `trusted` in order, each once.
pub fn reading_order(tenant: &Tenant, trusted: &[Tenant]) -> Vec<Tenant> {
    let mut order = alloc::vec![tenant.clone()];
    for other in trusted {
        if !order.contains(other) {
            order.push(other.clone());
        }
    }
    order
}

impl Default for Tenant {
    fn default() -> Tenant {
        Tenant::local()
    }
}

impl core::fmt::Display for Tenant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_5_names_carry_version_function_tenant_and_shard() {
        let key = Key(Digest([0xab; 32]));
        let tenant = Tenant::new("pr-12.x_y").unwrap();
        assert_eq!(
            record(HashFunction::Blake3, &tenant, &key),
            alloc::format!(
                "cachet-v1-blake3/tenants/pr-12.x_y/entries/ab/{}",
                "ab".repeat(32)
            )
        );
        assert_eq!(
            blob(HashFunction::Sha256, &Digest([0x01; 32])),
            alloc::format!("cachet-v1-sha256/blobs/01/{}", "01".repeat(32))
        );
    }

    #[test]
    fn remote_5_tenant_names_outside_the_alphabet_are_refused() {
        assert_eq!(Tenant::new(""), Err(TenantError::Empty));
        assert_eq!(Tenant::new(".hidden"), Err(TenantError::LeadingDot));
        assert_eq!(Tenant::new("a/b"), Err(TenantError::BadCharacter));
        assert_eq!(Tenant::new(".."), Err(TenantError::LeadingDot));
        assert_eq!(Tenant::new("é"), Err(TenantError::BadCharacter));
        assert_eq!(Tenant::new(&"a".repeat(65)), Err(TenantError::TooLong));
        assert!(Tenant::new(&"a".repeat(64)).is_ok());
        assert_eq!(Tenant::default().as_str(), "local");
    }

    #[test]
    fn remote_11_a_run_reads_its_own_tenant_first_then_the_trusted_in_order_once() {
        let t = |name| Tenant::new(name).unwrap();
        assert_eq!(
            reading_order(&t("pr-1"), &[t("main"), t("release"), t("main"), t("pr-1")]),
            alloc::vec![t("pr-1"), t("main"), t("release")]
        );
        assert_eq!(reading_order(&t("main"), &[]), alloc::vec![t("main")]);
    }
}
