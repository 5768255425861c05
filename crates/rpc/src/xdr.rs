//! XDR (RFC 4506) encoding and strict decoding.
//!
//! Everything on libvirt's wire is XDR: big-endian 4-byte units, variable
//! data prefixed by a 4-byte length and padded with zero bytes to a multiple
//! of four. The decoder is *strict* because its input comes from untrusted
//! peers: every length is checked against its protocol maximum and against
//! the bytes actually present **before** anything is allocated, padding must
//! be zero, booleans must be 0 or 1, and [`from_bytes`] rejects trailing
//! bytes. A decoder never panics on any input.
//!
//! Encoding is infallible: the types are ours and well formed. Oversized
//! output (a string longer than its maximum) is caught by the peer's decoder
//! or, for the whole message, by the frame encoder's size check.
//!
//! Note on `char`/`unsigned char`: rpcgen encodes `char x[N]`, `char x<N>`,
//! `unsigned char` and `unsigned short` as full 4-byte integers, so `i8`,
//! `u8` and `u16` are encoded as 4 bytes here too, and `Vec<u8>` is an XDR
//! *array of unsigned char* (4 bytes per element). XDR `opaque` is the
//! separate [`Opaque`] type (variable) or `[u8; N]` (fixed).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::XdrError;

/// Result of a decoding step.
pub type Result<T> = std::result::Result<T, XdrError>;

/// The maximum length of `remote_nonnull_string` (`REMOTE_STRING_MAX`, which
/// equals `VIR_NET_MESSAGE_STRING_MAX`): the bound used by [`String`]'s
/// decoder when no tighter maximum is given.
pub const STRING_MAX: usize = 4_194_304;

/// Bytes needed to pad `len` to a multiple of four.
fn pad_len(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

/// Appends XDR data to a growable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(cap),
        }
    }

    /// Continues writing after existing bytes (used by the frame encoder to
    /// write a header and body into one buffer).
    pub fn from_buf(buf: BytesMut) -> Self {
        Self { buf }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_inner(self) -> BytesMut {
        self.buf
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub fn put_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn put_u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    pub fn put_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub fn put_u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    pub fn put_f64(&mut self, v: f64) {
        self.buf.put_f64(v);
    }

    pub fn put_bool(&mut self, v: bool) {
        self.buf.put_u32(u32::from(v));
    }

    fn put_pad(&mut self, len: usize) {
        self.buf.put_bytes(0, pad_len(len));
    }

    /// Fixed-length opaque: the bytes and padding, no length prefix.
    pub fn put_fixed_opaque(&mut self, data: &[u8]) {
        self.buf.put_slice(data);
        self.put_pad(data.len());
    }

    /// Variable-length opaque (and the body of a string): length, bytes,
    /// padding.
    pub fn put_opaque(&mut self, data: &[u8]) {
        // Lengths beyond u32 cannot be represented; such data cannot be built
        // within the message size limit anyway, and the peer rejects it.
        self.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.put_fixed_opaque(data);
    }

    pub fn put_str(&mut self, s: &str) {
        self.put_opaque(s.as_bytes());
    }

    /// Raw bytes with no length or padding (an already-encoded body).
    pub fn put_raw(&mut self, data: &[u8]) {
        self.buf.put_slice(data);
    }
}

/// Reads XDR data from a byte slice, strictly.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Fails unless every byte was consumed: trailing garbage means the
    /// peer and we disagree about the structure, which must not pass
    /// silently.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(XdrError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(XdrError::Truncated {
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn get_u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take_array()?))
    }

    pub fn get_i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take_array()?))
    }

    pub fn get_u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take_array()?))
    }

    pub fn get_i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take_array()?))
    }

    pub fn get_f64(&mut self) -> Result<f64> {
        Ok(f64::from_be_bytes(self.take_array()?))
    }

    pub fn get_bool(&mut self) -> Result<bool> {
        match self.get_u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::InvalidBool(v)),
        }
    }

    fn check_pad(&mut self, len: usize) -> Result<()> {
        let pad = self.take(pad_len(len))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(XdrError::NonZeroPadding);
        }
        Ok(())
    }

    /// Fixed-length opaque of `len` bytes plus padding.
    pub fn get_fixed_opaque(&mut self, len: usize) -> Result<&'a [u8]> {
        let data = self.take(len)?;
        self.check_pad(len)?;
        Ok(data)
    }

    /// Variable-length opaque with a maximum. The length is checked against
    /// `max` and the remaining input before the slice is taken, so a forged
    /// length cannot cause an allocation.
    pub fn get_opaque(&mut self, max: usize) -> Result<&'a [u8]> {
        let len = self.get_u32()? as usize;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        self.get_fixed_opaque(len)
    }

    pub fn get_string(&mut self, max: usize) -> Result<String> {
        let data = self.get_opaque(max)?;
        std::str::from_utf8(data)
            .map(str::to_owned)
            .map_err(|_| XdrError::InvalidUtf8)
    }

    /// Reads an array count and checks it against `max` and against the
    /// input left (every XDR item is at least 4 bytes), so the caller may
    /// preallocate `count` elements safely.
    pub fn get_count(&mut self, max: usize) -> Result<usize> {
        let count = self.get_u32()? as usize;
        if count > max {
            return Err(XdrError::TooLong { len: count, max });
        }
        if count > self.remaining() / 4 {
            return Err(XdrError::Truncated {
                needed: count.saturating_mul(4),
                available: self.remaining(),
            });
        }
        Ok(count)
    }
}

/// A type with an XDR representation.
pub trait Xdr: Sized {
    fn encode(&self, enc: &mut Encoder);
    fn decode(dec: &mut Decoder<'_>) -> Result<Self>;
}

/// A variable-length type whose maximum is given by the protocol
/// definition (`string<MAX>`, `T x<MAX>`, `opaque x<MAX>`).
pub trait XdrBounded: Xdr {
    fn decode_max(dec: &mut Decoder<'_>, max: usize) -> Result<Self>;
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Bytes {
    let mut enc = Encoder::new();
    v.encode(&mut enc);
    enc.finish()
}

/// Decodes a value that must occupy `buf` exactly.
pub fn from_bytes<T: Xdr>(buf: &[u8]) -> Result<T> {
    let mut dec = Decoder::new(buf);
    let v = T::decode(&mut dec)?;
    dec.finish()?;
    Ok(v)
}

/// `void`: procedures without arguments or return value.
impl Xdr for () {
    fn encode(&self, _: &mut Encoder) {}
    fn decode(_: &mut Decoder<'_>) -> Result<Self> {
        Ok(())
    }
}

macro_rules! xdr_prim {
    ($t:ty, $put:ident, $get:ident) => {
        impl Xdr for $t {
            fn encode(&self, enc: &mut Encoder) {
                enc.$put(*self);
            }
            fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
                dec.$get()
            }
        }
    };
}

xdr_prim!(i32, put_i32, get_i32);
xdr_prim!(u32, put_u32, get_u32);
xdr_prim!(i64, put_i64, get_i64);
xdr_prim!(u64, put_u64, get_u64);
xdr_prim!(f64, put_f64, get_f64);
xdr_prim!(bool, put_bool, get_bool);

/// Small integers (`char`, `unsigned char`, `unsigned short`) travel as
/// 4-byte integers; a value outside the type's range is an error.
macro_rules! xdr_small_int {
    ($t:ty, $wide:ty, $put:ident, $get:ident) => {
        impl Xdr for $t {
            fn encode(&self, enc: &mut Encoder) {
                enc.$put(<$wide>::from(*self));
            }
            fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
                let v = dec.$get()?;
                <$t>::try_from(v).map_err(|_| XdrError::OutOfRange(i64::from(v)))
            }
        }
    };
}

xdr_small_int!(i8, i32, put_i32, get_i32);
xdr_small_int!(u8, u32, put_u32, get_u32);
xdr_small_int!(u16, u32, put_u32, get_u32);

impl Xdr for String {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_str(self);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        dec.get_string(STRING_MAX)
    }
}

impl XdrBounded for String {
    fn decode_max(dec: &mut Decoder<'_>, max: usize) -> Result<Self> {
        dec.get_string(max)
    }
}

/// Optional data (`T *x`): a boolean discriminant then the value.
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            None => enc.put_bool(false),
            Some(v) => {
                enc.put_bool(true);
                v.encode(enc);
            }
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        if dec.get_bool()? {
            Ok(Some(T::decode(dec)?))
        } else {
            Ok(None)
        }
    }
}

impl<T: XdrBounded> XdrBounded for Option<T> {
    fn decode_max(dec: &mut Decoder<'_>, max: usize) -> Result<Self> {
        if dec.get_bool()? {
            Ok(Some(T::decode_max(dec, max)?))
        } else {
            Ok(None)
        }
    }
}

/// Variable-length array. Without an explicit maximum the count is bounded
/// only by the input size (never by a forged count); protocol structs give
/// the protocol maximum through [`XdrBounded`].
impl<T: Xdr> Xdr for Vec<T> {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(u32::try_from(self.len()).unwrap_or(u32::MAX));
        for v in self {
            v.encode(enc);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        Self::decode_max(dec, u32::MAX as usize)
    }
}

impl<T: Xdr> XdrBounded for Vec<T> {
    fn decode_max(dec: &mut Decoder<'_>, max: usize) -> Result<Self> {
        let n = dec.get_count(max)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(dec)?);
        }
        Ok(v)
    }
}

/// Fixed-length opaque (`opaque x[N]`), e.g. a UUID.
impl<const N: usize> Xdr for [u8; N] {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_fixed_opaque(self);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        let s = dec.get_fixed_opaque(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// Fixed-length array of `char` (`char x[N]`): N 4-byte integers.
impl<const N: usize> Xdr for [i8; N] {
    fn encode(&self, enc: &mut Encoder) {
        for c in self {
            c.encode(enc);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        let mut a = [0i8; N];
        for c in a.iter_mut() {
            *c = i8::decode(dec)?;
        }
        Ok(a)
    }
}

/// Variable-length opaque data (`opaque x<MAX>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opaque(pub Vec<u8>);

impl Xdr for Opaque {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_opaque(&self.0);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        Self::decode_max(dec, u32::MAX as usize)
    }
}

impl XdrBounded for Opaque {
    fn decode_max(dec: &mut Decoder<'_>, max: usize) -> Result<Self> {
        Ok(Opaque(dec.get_opaque(max)?.to_vec()))
    }
}

/// Defines a struct and its [`Xdr`] impl, fields in wire order. A field may
/// carry its protocol maximum: `name: Vec<T> [max = LIMIT]`.
///
/// ```
/// rpc::xdr_struct! {
///     /// Example.
///     pub struct Pair {
///         pub id: i32,
///         pub names: Vec<String> [max = 16],
///     }
/// }
/// let p = Pair { id: 7, names: vec!["a".into()] };
/// let b = rpc::xdr::to_bytes(&p);
/// assert_eq!(rpc::xdr::from_bytes::<Pair>(&b).unwrap(), p);
/// ```
#[macro_export]
macro_rules! xdr_struct {
    ($(
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty $([max = $max:expr])? ),* $(,)?
        }
    )*) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $( $(#[$fm])* $fvis $field: $ty, )*
        }

        impl $crate::xdr::Xdr for $name {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                $( $crate::xdr::Xdr::encode(&self.$field, enc); )*
                let _ = enc;
            }
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::Result<Self> {
                let _ = &dec;
                Ok(Self {
                    $( $field: $crate::__xdr_decode_field!(dec, $ty $(, $max)?), )*
                })
            }
        }
    )*};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __xdr_decode_field {
    ($dec:ident, $ty:ty) => {
        <$ty as $crate::xdr::Xdr>::decode($dec)?
    };
    ($dec:ident, $ty:ty, $max:expr) => {
        <$ty as $crate::xdr::XdrBounded>::decode_max($dec, $max)?
    };
}

/// Defines an `i32`-valued XDR enum; decoding an unknown value is an error.
#[macro_export]
macro_rules! xdr_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $( $(#[$vm:meta])* $var:ident = $val:expr ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        $vis enum $name { $( $(#[$vm])* $var = $val ),* }

        impl $name {
            pub fn from_i32(v: i32) -> Option<Self> {
                match v {
                    $( x if x == $val => Some(Self::$var), )*
                    _ => None,
                }
            }
        }

        impl $crate::xdr::Xdr for $name {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                enc.put_i32(*self as i32);
            }
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::Result<Self> {
                let v = dec.get_i32()?;
                Self::from_i32(v).ok_or($crate::error::XdrError::InvalidEnum(v))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_length_bytes_padding() {
        let b = to_bytes(&"abcde".to_string());
        assert_eq!(&b[..], b"\0\0\0\x05abcde\0\0\0");
        assert_eq!(from_bytes::<String>(&b).unwrap(), "abcde");
    }

    #[test]
    fn nonzero_padding_is_rejected() {
        let b = b"\0\0\0\x01a\0\x01\0";
        assert_eq!(from_bytes::<String>(b), Err(XdrError::NonZeroPadding));
    }

    #[test]
    fn string_max_is_enforced_before_reading() {
        let mut d = Decoder::new(b"\0\0\0\x09");
        assert_eq!(d.get_string(8), Err(XdrError::TooLong { len: 9, max: 8 }));
    }

    #[test]
    fn forged_array_count_does_not_allocate() {
        let b = b"\xff\xff\xff\xff";
        assert!(matches!(
            from_bytes::<Vec<u64>>(b),
            Err(XdrError::Truncated { .. })
        ));
        let mut d = Decoder::new(b"\0\0\0\x03\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(
            <Vec<i32>>::decode_max(&mut d, 2),
            Err(XdrError::TooLong { len: 3, max: 2 })
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert_eq!(
            from_bytes::<i32>(b"\0\0\0\x01\0"),
            Err(XdrError::TrailingBytes(1))
        );
    }

    #[test]
    fn bool_must_be_zero_or_one() {
        assert_eq!(
            from_bytes::<bool>(b"\0\0\0\x02"),
            Err(XdrError::InvalidBool(2))
        );
    }

    #[test]
    fn optional_and_uuid() {
        let v: Option<[u8; 16]> = Some([7u8; 16]);
        let b = to_bytes(&v);
        assert_eq!(b.len(), 20);
        assert_eq!(from_bytes::<Option<[u8; 16]>>(&b).unwrap(), v);
        assert_eq!(&to_bytes(&None::<i32>)[..], b"\0\0\0\0");
    }

    #[test]
    fn char_array_is_four_bytes_per_char() {
        let a = [1i8; 32];
        assert_eq!(to_bytes(&a).len(), 128);
        assert_eq!(to_bytes(&200u8).len(), 4);
        assert_eq!(
            from_bytes::<u8>(b"\0\0\x01\0"),
            Err(XdrError::OutOfRange(256))
        );
    }

    crate::xdr_struct! {
        struct Demo {
            a: i32,
            b: Vec<String> [max = 2],
            c: Option<u64>,
        }
    }

    #[test]
    fn macro_struct_round_trip_and_max() {
        let d = Demo {
            a: -1,
            b: vec!["x".into(), "yz".into()],
            c: Some(9),
        };
        assert_eq!(from_bytes::<Demo>(&to_bytes(&d)).unwrap(), d);
        let too_many = Demo {
            b: vec!["1".into(), "2".into(), "3".into()],
            ..d
        };
        assert_eq!(
            from_bytes::<Demo>(&to_bytes(&too_many)),
            Err(XdrError::TooLong { len: 3, max: 2 })
        );
    }
}
