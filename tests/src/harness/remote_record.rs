//! Fuzz target `remote_record` (REMOTE-7, REMOTE-12, REMOTE-13, SAFE-1):
//! the bytes a remote sends back for an entry record, which are untrusted
//! until verified.
//!
//! - [`Record::decode`] never panics, and a record it accepts encodes to
//!   exactly the bytes it was decoded from: the codec has one byte form
//!   per record, so nothing a remote holds reads as two different entries.
//! - The same, for the input with its checksum put right (the record's own
//!   hash function, named by its 11th byte, over all of it), so that the
//!   fuzzer gets past the checksum to the fields behind it.
//! - [`sign::open`] never panics. Without a signing key, what it hands on
//!   is the object itself (unsigned) or the record behind a well-formed
//!   envelope. With one, it accepts only what signing that record with the
//!   reader's own key, namespace, tenant and entry key gives, byte for
//!   byte: no envelope the fuzzer makes verifies unless it is the genuine
//!   one. And signing the input then opening it gives the input back.

use alloc::vec::Vec;

use cachet_core::hash::{self, Digest, HashFunction};
use cachet_core::key::Key;
use cachet_core::remote::names::Tenant;
use cachet_core::remote::record::Record;
use cachet_core::remote::sign::{self, SigningKey};

/// Where the hash function id sits in a record: after the 8-byte magic,
/// the format version and the chapter revision.
const FUNCTION_ID_AT: usize = 10;

/// The namespace, tenant, entry key and signing key the harness reads
/// under.
const NAMESPACE: &str = "cachet-v1-blake3";
const TENANT: &str = "main";
const KEY_ID: &str = "fuzz";
const SECRET: [u8; 32] = [0x42; 32];
const ENTRY_KEY: Key = Key(Digest([0x17; 32]));

/// `record` signed as the harness's reader expects it: a seed that gets
/// past the signature check.
pub fn signed(record: &[u8]) -> Vec<u8> {
    match (Tenant::new(TENANT), SigningKey::new(KEY_ID, SECRET)) {
        (Ok(tenant), Ok(reader)) => reader.sign(NAMESPACE, &tenant, &ENTRY_KEY, record),
        _ => Vec::new(),
    }
}

/// Runs the `remote_record` checks on `data`; panics on a violation.
pub fn run(data: &[u8]) {
    round_trips(data);
    if let Some(function) = data
        .get(FUNCTION_ID_AT)
        .and_then(|&id| HashFunction::from_id(id))
    {
        let mut fixed = Vec::with_capacity(data.len() + 32);
        fixed.extend_from_slice(data);
        fixed.extend_from_slice(&hash::digest(function, data).0);
        round_trips(&fixed);
    }
    signatures(data);
}

fn round_trips(bytes: &[u8]) {
    let Ok(record) = Record::decode(bytes) else {
        return;
    };
    let encoded = record
        .encode()
        .unwrap_or_else(|e| panic!("REMOTE-7: an accepted record does not encode: {e:?}"));
    assert!(
        encoded == bytes,
        "REMOTE-7: an accepted record encodes to other bytes than it was decoded from"
    );
}

fn signatures(data: &[u8]) {
    let (Ok(tenant), Ok(reader)) = (Tenant::new(TENANT), SigningKey::new(KEY_ID, SECRET)) else {
        panic!("the harness's own tenant and key are valid");
    };
    let key = ENTRY_KEY;

    if let Ok(record) = sign::open(data, None, NAMESPACE, &tenant, &key) {
        assert!(
            record == data || data.ends_with(record),
            "REMOTE-13: an unkeyed open handed on bytes that are not the object's own record"
        );
    }
    if let Ok(record) = sign::open(data, Some(&reader), NAMESPACE, &tenant, &key) {
        assert!(
            reader.sign(NAMESPACE, &tenant, &key, record) == data,
            "REMOTE-13: an object verified that is not the genuine signature of its record"
        );
    }
    let signed = reader.sign(NAMESPACE, &tenant, &key, data);
    match sign::open(&signed, Some(&reader), NAMESPACE, &tenant, &key) {
        Ok(record) => assert!(record == data, "REMOTE-12: open gave another record back"),
        // The envelope carries only records: bytes that do not start as
        // one are refused, signed or not.
        Err(_) => assert!(
            !data.starts_with(&cachet_core::remote::record::MAGIC),
            "REMOTE-12: a record signed with the reader's key was refused"
        ),
    }
}
