//! Variable-length integers as Kafka writes them.
//!
//! Two families share one wire form (7 value bits per byte, least significant group
//! first, high bit set on every byte but the last; protocol guide: "Record", and
//! `ByteUtils` in Kafka's clients):
//!
//! * **varint / varlong**: signed 32/64-bit values, zigzag-mapped first so small
//!   negative numbers stay short (`0 → 0, -1 → 1, 1 → 2, -2 → 3, …`). Record batches
//!   use them for every length and delta inside a record.
//! * **unsigned varint**: plain unsigned values, used by the flexible versions of
//!   the request/response schemas (compact arrays and strings, tagged fields).
//!
//! Decoding reads at a cursor (`pos`) in a slice and advances it, so a parser can walk
//! a record without re-slicing. It rejects, with [`DecodeError::InvalidVarint`]:
//! encodings longer than the type allows (more than 5 bytes for 32 bits, 10 for 64),
//! and a last byte carrying bits the type cannot hold. Kafka's Java decoder silently
//! drops such bits; no encoder produces them, so klog refuses them rather than decode
//! a value the sender did not mean. Over-long but in-range encodings of small values
//! (`0x80 0x00` for 0) are accepted, as Kafka accepts them.

use bytes::BufMut;

use crate::error::DecodeError;

/// Most bytes a 32-bit varint (signed or unsigned) can take.
pub const MAX_VARINT_LEN: usize = 5;
/// Most bytes a 64-bit varlong (signed or unsigned) can take.
pub const MAX_VARLONG_LEN: usize = 10;

/// Maps a signed 32-bit value to unsigned so that small magnitudes stay small.
#[inline]
pub fn zigzag_encode_32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

/// Inverse of [`zigzag_encode_32`].
#[inline]
pub fn zigzag_decode_32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

/// Maps a signed 64-bit value to unsigned so that small magnitudes stay small.
#[inline]
pub fn zigzag_encode_64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag_encode_64`].
#[inline]
pub fn zigzag_decode_64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Encoded size of an unsigned 64-bit value (1 to 10 bytes).
#[inline]
pub fn unsigned_varlong_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of an unsigned 32-bit value (1 to 5 bytes).
#[inline]
pub fn unsigned_varint_len(value: u32) -> usize {
    unsigned_varlong_len(u64::from(value))
}

/// Encoded size of a zigzag varint (1 to 5 bytes).
#[inline]
pub fn varint_len(value: i32) -> usize {
    unsigned_varint_len(zigzag_encode_32(value))
}

/// Encoded size of a zigzag varlong (1 to 10 bytes).
#[inline]
pub fn varlong_len(value: i64) -> usize {
    unsigned_varlong_len(zigzag_encode_64(value))
}

/// Writes `value` into `out`, returning how many bytes were used.
#[inline]
fn encode_raw(mut value: u64, out: &mut [u8; MAX_VARLONG_LEN]) -> usize {
    let mut n = 0;
    for slot in out.iter_mut() {
        n += 1;
        if value < 0x80 {
            *slot = value as u8;
            break;
        }
        *slot = (value as u8) | 0x80;
        value >>= 7;
    }
    n
}

#[inline]
fn put_raw<B: BufMut + ?Sized>(buf: &mut B, value: u64) {
    if value < 0x80 {
        buf.put_u8(value as u8);
        return;
    }
    let mut tmp = [0u8; MAX_VARLONG_LEN];
    let n = encode_raw(value, &mut tmp);
    buf.put_slice(tmp.get(..n).unwrap_or(&[]));
}

/// Appends a zigzag varint.
#[inline]
pub fn put_varint<B: BufMut + ?Sized>(buf: &mut B, value: i32) {
    put_raw(buf, u64::from(zigzag_encode_32(value)));
}

/// Appends a zigzag varlong.
#[inline]
pub fn put_varlong<B: BufMut + ?Sized>(buf: &mut B, value: i64) {
    put_raw(buf, zigzag_encode_64(value));
}

/// Appends an unsigned varint.
#[inline]
pub fn put_unsigned_varint<B: BufMut + ?Sized>(buf: &mut B, value: u32) {
    put_raw(buf, u64::from(value));
}

/// Appends an unsigned varlong.
#[inline]
pub fn put_unsigned_varlong<B: BufMut + ?Sized>(buf: &mut B, value: u64) {
    put_raw(buf, value);
}

/// Reads an unsigned value of at most `bits` bits at `*pos`.
#[inline]
fn read_raw(buf: &[u8], pos: &mut usize, bits: u32) -> Result<u64, DecodeError> {
    let start = *pos;
    let rest = buf.get(start..).unwrap_or(&[]);
    // Fast path: most lengths and deltas in a record fit in one byte.
    if let Some(&b) = rest.first()
        && b < 0x80
    {
        *pos = start + 1;
        return Ok(u64::from(b));
    }
    let max_len = bits.div_ceil(7) as usize;
    let mut value = 0u64;
    let mut shift = 0u32;
    for i in 0..max_len {
        let Some(&b) = rest.get(i) else {
            return Err(DecodeError::Truncated {
                offset: start + i,
                needed: 1,
            });
        };
        let low = u64::from(b & 0x7f);
        if i + 1 == max_len && (b & 0x80 != 0 || low >> (bits - shift) != 0) {
            return Err(DecodeError::InvalidVarint { offset: start });
        }
        value |= low << shift;
        if b & 0x80 == 0 {
            *pos = start + i + 1;
            return Ok(value);
        }
        shift += 7;
    }
    Err(DecodeError::InvalidVarint { offset: start })
}

/// Reads a zigzag varint at `*pos` and advances `pos` past it.
///
/// On error `pos` is unchanged.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, DecodeError> {
    read_raw(buf, pos, 32).map(|v| zigzag_decode_32(v as u32))
}

/// Reads a zigzag varlong at `*pos` and advances `pos` past it.
///
/// On error `pos` is unchanged.
#[inline]
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, DecodeError> {
    read_raw(buf, pos, 64).map(zigzag_decode_64)
}

/// Reads an unsigned varint at `*pos` and advances `pos` past it.
///
/// On error `pos` is unchanged.
#[inline]
pub fn read_unsigned_varint(buf: &[u8], pos: &mut usize) -> Result<u32, DecodeError> {
    read_raw(buf, pos, 32).map(|v| v as u32)
}

/// Reads an unsigned varlong at `*pos` and advances `pos` past it.
///
/// On error `pos` is unchanged.
#[inline]
pub fn read_unsigned_varlong(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    read_raw(buf, pos, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        b
    }

    /// Zigzag mapping examples from the protocol guide ("Record": varints are
    /// zigzag-encoded as in protocol buffers).
    #[test]
    fn zigzag_examples() {
        assert_eq!(zigzag_encode_32(0), 0);
        assert_eq!(zigzag_encode_32(-1), 1);
        assert_eq!(zigzag_encode_32(1), 2);
        assert_eq!(zigzag_encode_32(-2), 3);
        assert_eq!(zigzag_encode_32(i32::MAX), 0xffff_fffe);
        assert_eq!(zigzag_encode_32(i32::MIN), 0xffff_ffff);
        assert_eq!(zigzag_encode_64(i64::MIN), u64::MAX);
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(-65), [0x81, 0x01]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut b = Vec::new();
        put_varlong(&mut b, i64::MIN);
        assert_eq!(
            b,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        let mut u = Vec::new();
        put_unsigned_varint(&mut u, 300);
        assert_eq!(u, [0xac, 0x02]);
    }

    #[test]
    fn rejects_overlong_and_overflowing() {
        // Six bytes for a 32-bit value.
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            Err(DecodeError::InvalidVarint { offset: 0 })
        );
        assert_eq!(pos, 0);
        // Fifth byte carries bits beyond 32.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos),
            Err(DecodeError::InvalidVarint { offset: 0 })
        );
        // Tenth byte carries bits beyond 64.
        let mut eleven = [0xffu8; 10];
        eleven[9] = 0x02;
        assert_eq!(
            read_varlong(&eleven, &mut pos),
            Err(DecodeError::InvalidVarint { offset: 0 })
        );
        // In-range but padded encodings are accepted, as Kafka accepts them.
        assert_eq!(read_varint(&[0x80, 0x00], &mut pos), Ok(0));
        assert_eq!(pos, 2);
    }

    #[test]
    fn truncation_reports_position() {
        let buf = [0x00, 0x80, 0x80];
        let mut pos = 1;
        assert_eq!(
            read_varint(&buf, &mut pos),
            Err(DecodeError::Truncated {
                offset: 3,
                needed: 1
            })
        );
        assert_eq!(pos, 1);
        let mut pos = 7;
        assert!(matches!(
            read_varlong(&buf, &mut pos),
            Err(DecodeError::Truncated { offset: 7, .. })
        ));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i32, prefix in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut b = prefix.clone();
            put_varint(&mut b, v);
            prop_assert_eq!(b.len() - prefix.len(), varint_len(v));
            let mut pos = prefix.len();
            prop_assert_eq!(read_varint(&b, &mut pos), Ok(v));
            prop_assert_eq!(pos, b.len());
        }

        #[test]
        fn varlong_round_trip(v: i64) {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), varlong_len(v));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&b, &mut pos), Ok(v));
            prop_assert_eq!(pos, b.len());
        }

        #[test]
        fn unsigned_round_trip(v: u32, w: u64) {
            let mut b = Vec::new();
            put_unsigned_varint(&mut b, v);
            put_unsigned_varlong(&mut b, w);
            prop_assert_eq!(b.len(), unsigned_varint_len(v) + unsigned_varlong_len(w));
            let mut pos = 0;
            prop_assert_eq!(read_unsigned_varint(&b, &mut pos), Ok(v));
            prop_assert_eq!(read_unsigned_varlong(&b, &mut pos), Ok(w));
            prop_assert_eq!(pos, b.len());
        }

        /// Whatever the bytes, decoding either fails or consumes a prefix whose
        /// re-encoding (canonical) decodes to the same value.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut pos = 0;
            if let Ok(v) = read_varlong(&bytes, &mut pos) {
                prop_assert!((1..=MAX_VARLONG_LEN).contains(&pos));
                let mut b = Vec::new();
                put_varlong(&mut b, v);
                let mut p = 0;
                prop_assert_eq!(read_varlong(&b, &mut p), Ok(v));
            } else {
                prop_assert_eq!(pos, 0);
            }
            let mut pos = 0;
            if read_varint(&bytes, &mut pos).is_ok() {
                prop_assert!((1..=MAX_VARINT_LEN).contains(&pos));
            }
        }
    }
}
