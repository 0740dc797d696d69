//! Request framing: every Kafka request and response is a big-endian `i32` size
//! followed by that many bytes (protocol guide: "Protocol Primitives").
//!
//! The size is untrusted. It is checked here, before the reader allocates anything:
//! a negative size or one above `socket.request.max.bytes` is refused and the
//! connection is closed by the caller.

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 100 * 1024 * 1024;

/// The smallest request that can carry a header: api key, api version and
/// correlation id.
pub const MIN_REQUEST_SIZE: usize = 8;

/// Why a frame size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    Negative(i32),
    /// The size prefix is too small to hold a request header.
    #[error("frame size {0} is smaller than a request header")]
    TooSmall(i32),
    /// The size prefix exceeds the configured maximum.
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The size announced by the peer.
        size: usize,
        /// The configured maximum (`socket.request.max.bytes`).
        max: usize,
    },
}

/// Checks a request size prefix against `max` and returns it as a `usize`.
pub fn check_frame_size(raw: i32, max: usize) -> Result<usize, FrameError> {
    if raw < 0 {
        return Err(FrameError::Negative(raw));
    }
    let size = raw as usize;
    if size < MIN_REQUEST_SIZE {
        return Err(FrameError::TooSmall(raw));
    }
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_sizes_before_allocating() {
        assert_eq!(check_frame_size(-1, 100), Err(FrameError::Negative(-1)));
        assert_eq!(check_frame_size(3, 100), Err(FrameError::TooSmall(3)));
        assert_eq!(
            check_frame_size(i32::MAX, DEFAULT_MAX_REQUEST_SIZE),
            Err(FrameError::TooLarge {
                size: i32::MAX as usize,
                max: DEFAULT_MAX_REQUEST_SIZE
            })
        );
        assert_eq!(check_frame_size(100, 100), Ok(100));
    }
}
