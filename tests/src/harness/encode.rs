//! Writes structured fuzz inputs as the bytes `arbitrary` decodes them
//! from, so that seeds for [`super::key_derivation`] and
//! [`super::cache_ops`] can be written as values rather than as opaque
//! byte strings.
//!
//! This mirrors `arbitrary` 1.x's documented decoding of the few shapes the
//! harness inputs use: integers are little-endian, `bool` is the low bit of
//! one byte, `Option` is a `bool` then the value, a `Vec` is a
//! `bool` "one more element" before each element and a `false` after the
//! last, an array or tuple is its elements in order, and a derived enum
//! reads a `u32` `x` and takes variant `(x * count) >> 32`. Should a new
//! `arbitrary` decode differently, the round-trip test in
//! `tests/fuzz_seeds.rs` fails: every seed is decoded and compared with the
//! value it was written from.

use alloc::vec::Vec;

/// A value that can be written in the byte form its `Arbitrary` impl reads.
pub trait Encode {
    /// Appends the bytes that decode to `self`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// The bytes that decode to `value`.
pub fn to_bytes<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Writes the tag of enum variant `index` out of `count`: the smallest
/// `u32` `x` with `(x * count) >> 32 == index`.
pub fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let x = (u64::from(index) << 32).div_ceil(u64::from(count));
    let x = u32::try_from(x).unwrap_or(u32::MAX);
    x.encode(out);
}

macro_rules! encode_int {
    ($($ty:ty),*) => {$(
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
encode_int!(u8, u16, u32, u64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(value) = self {
            value.encode(out);
        }
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut Vec<u8>) {
        for element in self {
            true.encode(out);
            element.encode(out);
        }
        false.encode(out);
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_slice().encode(out);
    }
}

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        for element in self {
            element.encode(out);
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Encode, B: Encode, C: Encode, D: Encode> Encode for (A, B, C, D) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
        self.3.encode(out);
    }
}
