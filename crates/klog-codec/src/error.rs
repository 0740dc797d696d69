//! Errors raised while decoding untrusted bytes ([`DecodeError`]) and while building
//! record batches ([`EncodeError`]).
//!
//! They are separate failure domains: decoding fails because a peer sent bad bytes,
//! encoding fails because the caller asked for something the format cannot express.

/// Why a sequence of bytes is not a valid Kafka structure.
///
/// Every variant carries the byte offset (relative to the start of the buffer given
/// to the decoder) where the problem was found, so a corrupt segment or request can
/// be located exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ended before the structure did.
    #[error("truncated at byte {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
        /// How many more bytes were needed.
        needed: usize,
    },
    /// A record batch carries a magic byte other than 2.
    #[error("unsupported record batch magic {magic} at byte {offset}")]
    UnsupportedMagic {
        /// Start of the batch.
        offset: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// A length field is negative, too small or inconsistent with its container.
    #[error("invalid {what} {value} at byte {offset}")]
    InvalidLength {
        /// Where the length field starts.
        offset: usize,
        /// Which length field.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// The stored CRC-32C does not match the bytes it covers.
    #[error(
        "CRC-32C mismatch in batch at byte {offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    ChecksumMismatch {
        /// Start of the batch.
        offset: usize,
        /// CRC stored in the batch header.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// A varint is longer than its type allows.
    #[error("malformed varint at byte {offset}")]
    InvalidVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// The attributes name a compression codec that does not exist.
    #[error("unknown compression codec {codec} at byte {offset}")]
    UnknownCompression {
        /// Start of the batch.
        offset: usize,
        /// The codec id found in the attributes (bits 0-2).
        codec: u8,
    },
    /// Decompressing a batch's records failed.
    #[error("{codec} decompression failed in batch at byte {offset}: {reason}")]
    Decompression {
        /// Start of the batch.
        offset: usize,
        /// The codec that failed.
        codec: &'static str,
        /// What the decompressor reported.
        reason: String,
    },
    /// A record inside a batch is inconsistent (wrong count, trailing bytes, ...).
    #[error("invalid record at byte {offset}: {reason}")]
    InvalidRecord {
        /// Where the record starts (in the decompressed records if compressed).
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Decompressing a batch would produce more bytes than the caller allows.
    ///
    /// Guards against decompression bombs: a few KiB of zstd or gzip can expand to
    /// gigabytes. The limit is [`crate::records::DEFAULT_MAX_DECOMPRESSED_LEN`] unless
    /// the caller chose another.
    #[error("{codec} records in batch at byte {offset} decompress to more than {limit} bytes")]
    DecompressedTooLarge {
        /// Start of the batch.
        offset: usize,
        /// The codec of the batch.
        codec: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
}

/// Why a record batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// `finish` was called on a builder holding no records; Kafka never sends empty
    /// batches from a producer, and an empty batch has no meaningful last offset.
    #[error("a record batch needs at least one record")]
    Empty,
    /// The batch already holds `i32::MAX` records, or a record's offset delta would
    /// not fit in an `i32`.
    #[error("too many records in one batch")]
    TooManyRecords,
    /// A length (key, value, header, record or whole batch) does not fit the `i32`
    /// the format stores it in.
    #[error("{what} of {len} bytes does not fit in a record batch")]
    TooLarge {
        /// Which length overflowed.
        what: &'static str,
        /// The length asked for.
        len: usize,
    },
    /// The compressor reported an error.
    #[error("{codec} compression failed: {reason}")]
    Compression {
        /// The codec that failed.
        codec: &'static str,
        /// What the compressor reported.
        reason: String,
    },
}
