//! Compressing and decompressing the records section of a batch.
//!
//! When a batch's attributes name a codec, everything after `recordsCount` is one
//! compressed blob (protocol guide: "Message format", RecordBatch). The codecs and
//! their wire forms, as real clients produce them:
//!
//! | codec  | decoded                                       | encoded by klog        |
//! |--------|-----------------------------------------------|------------------------|
//! | gzip   | one or more gzip members (RFC 1952)           | one member             |
//! | snappy | a raw snappy block, or the xerial framing     | a raw snappy block     |
//! | lz4    | the LZ4 frame format                          | frame, 64 KiB blocks   |
//! | zstd   | one or more zstd frames                       | one frame              |
//!
//! The xerial framing (`0x82 "SNAPPY" 0x00`, two big-endian `i32` versions, then
//! `i32`-length-prefixed raw blocks) is what the Java client's `SnappyOutputStream`
//! and kafka-python write; librdkafka writes raw blocks. Both are accepted; klog
//! writes raw blocks, which every client reads.
//!
//! Decompression output is capped by a caller-chosen limit, checked while
//! decompressing, so a small hostile batch cannot make the reader allocate gigabytes
//! ([`DecodeError::DecompressedTooLarge`]).

use std::io::{self, Read, Write};

use crate::batch::Compression;
use crate::error::{DecodeError, EncodeError};

/// The 8-byte magic that starts a xerial snappy stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00];
/// Bytes before the first block of a xerial stream: magic, version, compatible version.
const XERIAL_HEADER_LEN: usize = 16;

/// Decompresses `input` (the records section of a batch compressed with `codec`).
///
/// Fails with [`DecodeError::DecompressedTooLarge`] as soon as the output would exceed
/// `max_len` bytes. `at` is the batch's position, used in errors.
/// [`Compression::None`] returns a copy of `input`.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_len: usize,
    at: usize,
) -> Result<Vec<u8>, DecodeError> {
    let fail = |reason: String| DecodeError::Decompression {
        offset: at,
        codec: codec.name(),
        reason,
    };
    let too_large = DecodeError::DecompressedTooLarge {
        offset: at,
        codec: codec.name(),
        limit: max_len,
    };
    match codec {
        Compression::None => {
            if input.len() > max_len {
                return Err(too_large);
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            max_len,
        )
        .map_err(|e| capped_error(e, too_large, fail)),
        Compression::Lz4 => read_capped(
            lz4_flex::frame::FrameDecoder::new(input),
            input.len(),
            max_len,
        )
        .map_err(|e| capped_error(e, too_large, fail)),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| fail(e.to_string()))?;
            // Bound the window the decoder may allocate: a frame header alone can ask
            // for 2^27 bytes. Never below 2^24, which every zstd level up to 19 fits.
            let window_log = usize::BITS - max_len.max(1).leading_zeros();
            decoder
                .window_log_max(window_log.clamp(24, 31))
                .map_err(|e| fail(e.to_string()))?;
            read_capped(decoder, input.len(), max_len).map_err(|e| capped_error(e, too_large, fail))
        }
        Compression::Snappy => {
            let mut out = Vec::new();
            let result = if input.starts_with(&XERIAL_MAGIC) {
                snappy_xerial(input, max_len, &mut out)
            } else {
                snappy_block(input, max_len, &mut out)
            };
            match result {
                Ok(()) => Ok(out),
                Err(SnappyError::TooLarge) => Err(too_large),
                Err(SnappyError::Invalid(reason)) => Err(fail(reason)),
            }
        }
    }
}

/// Marker carried through `io::Error` when the cap is hit.
#[derive(Debug)]
struct CapExceeded;

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed size limit exceeded")
    }
}

impl std::error::Error for CapExceeded {}

fn capped_error(
    e: io::Error,
    too_large: DecodeError,
    fail: impl Fn(String) -> DecodeError,
) -> DecodeError {
    if e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>()) {
        too_large
    } else {
        fail(e.to_string())
    }
}

/// Reads `reader` to its end, failing once more than `max_len` bytes come out.
fn read_capped(reader: impl Read, input_len: usize, max_len: usize) -> io::Result<Vec<u8>> {
    // Typical record data compresses 2-5x; start there and let the Vec grow.
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(max_len));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out)?;
    if out.len() > max_len {
        return Err(io::Error::other(CapExceeded));
    }
    Ok(out)
}

enum SnappyError {
    TooLarge,
    Invalid(String),
}

/// Appends the decompression of one raw snappy block to `out`.
fn snappy_block(block: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), SnappyError> {
    // The block states its own uncompressed length up front: check it before
    // allocating anything.
    let len = snap::raw::decompress_len(block).map_err(|e| SnappyError::Invalid(e.to_string()))?;
    if len > max_len.saturating_sub(out.len()) {
        return Err(SnappyError::TooLarge);
    }
    let start = out.len();
    out.resize(start + len, 0);
    let dst = out.get_mut(start..).unwrap_or(&mut []);
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|e| SnappyError::Invalid(e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

/// Decompresses a xerial-framed snappy stream (header checked by the caller).
fn snappy_xerial(input: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), SnappyError> {
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| SnappyError::Invalid("truncated xerial header".into()))?;
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| SnappyError::Invalid("truncated xerial block length".into()))?;
        let len = i32::from_be_bytes(*len_bytes);
        let len = usize::try_from(len)
            .map_err(|_| SnappyError::Invalid(format!("negative xerial block length {len}")))?;
        if len > tail.len() {
            return Err(SnappyError::Invalid(format!(
                "xerial block of {len} bytes with {} left",
                tail.len()
            )));
        }
        let (block, tail) = tail.split_at(len);
        snappy_block(block, max_len, out)?;
        rest = tail;
    }
    Ok(())
}

/// Adapter writing compressor output straight into the batch buffer.
pub(crate) struct Appender<'a, B: ?Sized>(pub(crate) &'a mut B);

impl<B: crate::buf::BatchBuf + ?Sized> Write for Appender<'_, B> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses `input` with `codec` and appends the result to `out`.
///
/// `level` applies to gzip (0-9, default 6) and zstd (1-22, default 3); snappy and
/// LZ4 have no levels. [`Compression::None`] appends `input` as it is.
pub(crate) fn compress_into<B: crate::buf::BatchBuf + ?Sized>(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
    out: &mut B,
) -> Result<(), EncodeError> {
    let fail = |reason: String| EncodeError::Compression {
        codec: codec.name(),
        reason,
    };
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => {
            let level = level.map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(l.clamp(0, 9) as u32)
            });
            let mut enc = flate2::write::GzEncoder::new(Appender(out), level);
            enc.write_all(input).map_err(|e| fail(e.to_string()))?;
            enc.finish().map_err(|e| fail(e.to_string()))?;
            Ok(())
        }
        Compression::Snappy => {
            let start = out.len();
            out.resize(start + snap::raw::max_compress_len(input.len()), 0);
            let dst = out.as_mut().get_mut(start..).unwrap_or(&mut []);
            let written = snap::raw::Encoder::new().compress(input, dst);
            match written {
                Ok(n) => {
                    out.truncate(start + n);
                    Ok(())
                }
                Err(e) => {
                    out.truncate(start);
                    Err(fail(e.to_string()))
                }
            }
        }
        Compression::Lz4 => {
            // Kafka's own LZ4 stream writes independent 64 KiB blocks without
            // checksums beyond the header's; match it so every reader copes.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .content_checksum(false);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Appender(out));
            enc.write_all(input).map_err(|e| fail(e.to_string()))?;
            enc.finish().map_err(|e| fail(e.to_string()))?;
            Ok(())
        }
        Compression::Zstd => {
            let start = out.len();
            out.resize(start + zstd::zstd_safe::compress_bound(input.len()), 0);
            let dst = out.as_mut().get_mut(start..).unwrap_or(&mut []);
            let level = level.unwrap_or(zstd::DEFAULT_COMPRESSION_LEVEL);
            match zstd::bulk::compress_to_buffer(input, dst, level) {
                Ok(n) => {
                    out.truncate(start + n);
                    Ok(())
                }
                Err(e) => {
                    out.truncate(start);
                    Err(fail(e.to_string()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| format!("record-{} ", i % 977).into_bytes())
            .collect()
    }

    #[test]
    fn round_trip_every_codec() {
        let data = sample();
        for codec in ALL {
            let mut out = vec![0xAAu8; 3]; // existing bytes must be kept
            compress_into(codec, None, &data, &mut out).expect("compress");
            assert_eq!(&out[..3], &[0xAA; 3]);
            if codec != Compression::None {
                assert!(out.len() < data.len() / 2, "{codec} did not compress");
            }
            let back = decompress(codec, &out[3..], data.len(), 0).expect("decompress");
            assert_eq!(back, data, "{codec}");
        }
    }

    #[test]
    fn cap_is_enforced_for_every_codec() {
        let data = sample();
        for codec in ALL {
            let mut out = Vec::new();
            compress_into(codec, None, &data, &mut out).expect("compress");
            let err = decompress(codec, &out, data.len() - 1, 40).expect_err("over the cap");
            assert_eq!(
                err,
                DecodeError::DecompressedTooLarge {
                    offset: 40,
                    codec: codec.name(),
                    limit: data.len() - 1
                }
            );
        }
    }

    /// A zstd bomb: 64 MiB of zeros squeezed into a few KiB stops at the cap without
    /// materialising the whole output.
    #[test]
    fn zstd_bomb_stops_at_cap() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = zstd::bulk::compress(&zeros, 3).expect("compress");
        assert!(bomb.len() < 64 << 10);
        let err = decompress(Compression::Zstd, &bomb, 1 << 20, 0).expect_err("capped");
        assert!(matches!(err, DecodeError::DecompressedTooLarge { .. }));
    }

    fn xerial(blocks: &[&[u8]]) -> Vec<u8> {
        let mut s = XERIAL_MAGIC.to_vec();
        s.extend_from_slice(&1i32.to_be_bytes());
        s.extend_from_slice(&1i32.to_be_bytes());
        for block in blocks {
            let c = snap::raw::Encoder::new()
                .compress_vec(block)
                .expect("snappy");
            s.extend_from_slice(&(c.len() as i32).to_be_bytes());
            s.extend_from_slice(&c);
        }
        s
    }

    #[test]
    fn snappy_xerial_framing() {
        let s = xerial(&[b"hello ", b"xerial ", b"world"]);
        let out = decompress(Compression::Snappy, &s, 1024, 0).expect("xerial");
        assert_eq!(out, b"hello xerial world");
        // The cap counts across blocks.
        assert!(matches!(
            decompress(Compression::Snappy, &s, 10, 0),
            Err(DecodeError::DecompressedTooLarge { limit: 10, .. })
        ));
        // A block length running past the end is refused.
        let mut torn = s.clone();
        torn.truncate(s.len() - 1);
        assert!(matches!(
            decompress(Compression::Snappy, &torn, 1024, 0),
            Err(DecodeError::Decompression { .. })
        ));
        // Header only: an empty stream.
        let empty = xerial(&[]);
        assert_eq!(
            decompress(Compression::Snappy, &empty, 1024, 0).expect("empty"),
            b""
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            // For snappy the leading 5 is a plausible stated length, so the failure
            // is in the block body, not the size check.
            let err =
                decompress(codec, b"\x05 not compressed at all", 1024, 9).expect_err("garbage");
            assert!(
                matches!(err, DecodeError::Decompression { offset: 9, .. }),
                "{codec}: {err:?}"
            );
        }
    }
}
