//! The buffers a batch is built in.
//!
//! [`BatchBuf`] is what [`crate::builder`] writes a batch into and what
//! [`crate::compression`] appends compressed records to; it lives apart from both so
//! that compression, which the builder and the record decoder use, depends on neither.

use bytes::{BufMut, BytesMut};

/// A growable byte buffer a batch can be built in.
///
/// Implemented for `Vec<u8>`, [`BytesMut`] and mutable references to them. The batch
/// is appended after whatever the buffer already holds.
pub trait BatchBuf: BufMut + AsRef<[u8]> + AsMut<[u8]> {
    /// Appends `data`.
    fn extend_from_slice(&mut self, data: &[u8]);
    /// Shortens the buffer to `len` bytes.
    fn truncate(&mut self, len: usize);
    /// Grows (zero-filled) or shrinks the buffer to `len` bytes.
    fn resize(&mut self, len: usize, value: u8);
    /// Reserves room for at least `additional` more bytes.
    fn reserve(&mut self, additional: usize);
    /// Bytes held.
    fn len(&self) -> usize {
        self.as_ref().len()
    }
    /// Whether the buffer holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BatchBuf for Vec<u8> {
    fn extend_from_slice(&mut self, data: &[u8]) {
        Vec::extend_from_slice(self, data);
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn resize(&mut self, len: usize, value: u8) {
        Vec::resize(self, len, value);
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

impl BatchBuf for BytesMut {
    fn extend_from_slice(&mut self, data: &[u8]) {
        BytesMut::extend_from_slice(self, data);
    }
    fn truncate(&mut self, len: usize) {
        BytesMut::truncate(self, len);
    }
    fn resize(&mut self, len: usize, value: u8) {
        BytesMut::resize(self, len, value);
    }
    fn reserve(&mut self, additional: usize) {
        BytesMut::reserve(self, additional);
    }
}

impl<B: BatchBuf + ?Sized> BatchBuf for &mut B {
    fn extend_from_slice(&mut self, data: &[u8]) {
        (**self).extend_from_slice(data);
    }
    fn truncate(&mut self, len: usize) {
        (**self).truncate(len);
    }
    fn resize(&mut self, len: usize, value: u8) {
        (**self).resize(len, value);
    }
    fn reserve(&mut self, additional: usize) {
        (**self).reserve(additional);
    }
}
