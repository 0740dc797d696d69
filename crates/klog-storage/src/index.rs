//! Sparse, memory-mapped offset and time indexes.
//!
//! Both are arrays of fixed-size big-endian entries in a file that is preallocated
//! while the segment is active and trimmed to its entries when the segment rolls or
//! the log closes. Entries are strictly increasing in their relative offset, which is
//! how the real entries of a preallocated file are told from its zero-filled tail
//! after a crash (see [`IndexFile::open`]). An index is only ever a hint: every
//! lookup is confirmed by reading batch headers from the log file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

/// Size of an offset index entry: relative offset u32, position u32.
pub(crate) const OFFSET_ENTRY: usize = 8;
/// Size of a time index entry: timestamp i64, relative offset u32.
pub(crate) const TIME_ENTRY: usize = 12;

/// A file of fixed-size entries, mapped into memory.
///
/// No descriptor is kept open: the mapping stays valid without one, and the rare
/// operations that need the file (preparing pages, resizing, fsync) open it by
/// path. A broker with 10,000 partitions then holds 10,000 segment descriptors
/// rather than 30,000 (this machine's hard limit is 20,000).
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    mmap: MmapMut,
    entry_size: usize,
    entries: usize,
    /// Entries the file (and mapping) can hold.
    capacity: usize,
    /// Bytes from the start of the file known to be backed by written blocks; see
    /// [`IndexFile::prepare`].
    prepared: usize,
}

/// How far ahead of the last entry [`IndexFile::prepare`] writes zeros.
const PREPARE_AHEAD: usize = 64 * 1024;

impl IndexFile {
    /// Opens or creates the index at `path`, finds its real entries and sizes the
    /// file to `capacity` entries (at least its real entries).
    ///
    /// A file preallocated by a process that then crashed has zeros after its last
    /// entry. Every entry after the first has a relative offset above 0, so the real
    /// entries are the prefix before the first later entry whose relative offset is
    /// 0, found by binary search. A lone all-zero first entry is dropped: it would
    /// only say "offset 0 is at position 0", which a lookup assumes anyway.
    ///
    /// The search reads the file with `pread`, not through the mapping: probing a
    /// preallocated 10 MiB index through the mapping left ~20 pages of it mapped per
    /// index, ~1 GiB of RSS for 10,000 partitions reopened after a crash. A file that
    /// is full of entries (trimmed) is recognised with one read.
    fn open(path: &Path, entry_size: usize, rel_at: usize, capacity: usize) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let on_disk = usize::try_from(len / entry_size as u64)
            .map_err(|_| io::Error::other("index file too large"))?;
        let entries = count_real_entries(&file, on_disk, entry_size, rel_at)?;
        let mmap = map(&file, on_disk * entry_size)?;
        let mut index = Self {
            path: path.to_path_buf(),
            mmap,
            entry_size,
            entries,
            capacity: on_disk,
            prepared: entries * entry_size,
        };
        index.resize_file(&file, capacity.max(index.entries))?;
        Ok(index)
    }

    /// Opens the file for one operation (see the type's documentation).
    fn open_file(&self) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(&self.path)
    }

    fn entry(&self, i: usize) -> &[u8] {
        let at = i * self.entry_size;
        &self.mmap[at..at + self.entry_size]
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Whether no more entries fit.
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Appends an entry; returns false (and does nothing) if the file is full.
    fn push(&mut self, entry: &[u8]) -> bool {
        if self.is_full() {
            return false;
        }
        let at = self.entries * self.entry_size;
        if at + self.entry_size > self.prepared {
            self.prepare(at + self.entry_size);
        }
        self.mmap[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
        true
    }

    /// Writes zeros with `pwrite` from the prepared mark to at least `upto` (64 KiB
    /// at a time) before entries are stored there through the mapping.
    ///
    /// The preallocated file is sparse. The first store into a hole through a shared
    /// mapping makes the file system allocate the block inside a page fault, which
    /// on ext4 was measured at several milliseconds per fault under write load (it
    /// can wait for the journal); a `write` of the same page costs microseconds, and
    /// later stores through the mapping then find the block in place. Failure is not
    /// an error: the store through the mapping still works, only slower.
    fn prepare(&mut self, upto: usize) {
        let end = (upto + PREPARE_AHEAD).min(self.capacity * self.entry_size);
        if end <= self.prepared {
            return;
        }
        let zeros = vec![0u8; end - self.prepared];
        match self
            .open_file()
            .and_then(|f| f.write_all_at(&zeros, self.prepared as u64))
        {
            Ok(()) => self.prepared = end,
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "could not prepare index pages");
                self.prepared = upto;
            }
        }
    }

    /// Keeps only the first `n` entries; later slots are zeroed so that a crash
    /// cannot resurrect them.
    fn truncate(&mut self, n: usize) {
        if n < self.entries {
            let from = n * self.entry_size;
            let to = self.entries * self.entry_size;
            self.mmap[from..to].fill(0);
            self.entries = n;
        }
    }

    /// Resizes the file and mapping to hold `capacity` entries (never fewer than the
    /// current entries): preallocation when a segment becomes active, trimming when it
    /// stops being active.
    pub(crate) fn resize(&mut self, capacity: usize) -> io::Result<()> {
        if capacity.max(self.entries) == self.capacity {
            return Ok(());
        }
        let file = self.open_file()?;
        self.resize_file(&file, capacity)
    }

    fn resize_file(&mut self, file: &File, capacity: usize) -> io::Result<()> {
        let capacity = capacity.max(self.entries);
        if capacity == self.capacity {
            return Ok(());
        }
        // Unmap before changing the file length: a mapping past the end of a file
        // faults on access.
        self.mmap = MmapMut::map_anon(0)?;
        file.set_len((capacity * self.entry_size) as u64)?;
        self.mmap = map(file, capacity * self.entry_size)?;
        self.capacity = capacity;
        self.prepared = self.prepared.min(capacity * self.entry_size);
        Ok(())
    }

    /// Trims the file to exactly its entries.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        self.resize(self.entries)
    }

    /// Writes dirty pages and the file length to disk.
    pub(crate) fn flush(&self) -> io::Result<()> {
        if !self.mmap.is_empty() {
            self.mmap.flush()?;
        }
        self.open_file()?.sync_all()
    }

    /// Binary search: number of entries for which `pred` holds, given that it holds
    /// for a prefix of the entries.
    fn partition_point(&self, mut pred: impl FnMut(&[u8]) -> bool) -> usize {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The number of real entries among the first `total` of `file`; see
/// [`IndexFile::open`].
fn count_real_entries(
    file: &File,
    total: usize,
    entry_size: usize,
    rel_at: usize,
) -> io::Result<usize> {
    if total == 0 {
        return Ok(0);
    }
    let mut entry = vec![0u8; entry_size];
    let mut read = |i: usize| -> io::Result<(u32, bool)> {
        file.read_exact_at(&mut entry, (i * entry_size) as u64)?;
        Ok((read_u32(&entry, rel_at), entry.iter().all(|&b| b == 0)))
    };
    // Entries 1.. are "real" while their relative offset is non-zero.
    if total > 1 && read(total - 1)?.0 != 0 {
        return Ok(total);
    }
    let (mut lo, mut hi) = (1usize, total);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read(mid)?.0 != 0 {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 1 && read(0)?.1 { Ok(0) } else { Ok(lo) }
}

// SAFETY (for `map`): index files live in a partition folder owned by this process;
// the crate documents that nothing else may modify them while a log is open. The
// mapping is dropped before the file is resized.
fn map(file: &File, len: usize) -> io::Result<MmapMut> {
    if len == 0 {
        return MmapMut::map_anon(0);
    }
    // SAFETY: see above.
    let mmap = unsafe { MmapOptions::new().len(len).map_mut(file) }?;
    // Index pages are touched one at a time (an append, a binary search probe): no
    // readahead. Without this a first touch of a preallocated, sparse index reads
    // ahead the device's read_ahead_kb (8 MiB on the machine in docs/PERFORMANCE.md)
    // of zeroes into the page cache: 16 MiB per partition, a third of the broker's CPU
    // with 64 partitions.
    mmap.advise(memmap2::Advice::Random)?;
    Ok(mmap)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Sparse map from offset to the file position of the batch starting at it.
///
/// Entry: relative offset (u32 BE, `base offset of the batch - segment base`),
/// position (u32 BE) of that batch in the `.log` file.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
}

impl OffsetIndex {
    /// Opens or creates the index, sized for `max_bytes` when `active`, else trimmed.
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        active: bool,
        max_bytes: u32,
    ) -> io::Result<Self> {
        let capacity = if active {
            capacity(max_bytes, OFFSET_ENTRY)
        } else {
            0
        };
        Ok(Self {
            file: IndexFile::open(path, OFFSET_ENTRY, 0, capacity)?,
            base_offset,
        })
    }

    pub(crate) fn inner(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn file(&self) -> &IndexFile {
        &self.file
    }

    /// Entry `i` as (absolute offset, position).
    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let e = self.file.entry(i);
        (self.base_offset + i64::from(read_u32(e, 0)), read_u32(e, 4))
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.file.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Adds an entry for the batch starting at `offset` and `position`. The caller
    /// guarantees both increase. Returns false if the index is full.
    pub(crate) fn append(&mut self, offset: i64, position: u32) -> bool {
        let rel = (offset - self.base_offset) as u32;
        let mut e = [0u8; OFFSET_ENTRY];
        e[0..4].copy_from_slice(&rel.to_be_bytes());
        e[4..8].copy_from_slice(&position.to_be_bytes());
        self.file.push(&e)
    }

    /// The entry with the largest offset at or below `offset`, or `(base, 0)`.
    pub(crate) fn lookup(&self, offset: i64) -> (i64, u32) {
        let n = self
            .file
            .partition_point(|e| self.base_offset + i64::from(read_u32(e, 0)) <= offset);
        match n.checked_sub(1) {
            Some(i) => self.get(i),
            None => (self.base_offset, 0),
        }
    }

    /// The entry with the largest position at or below `position`, or `(base, 0)`.
    pub(crate) fn lookup_position(&self, position: u64) -> (i64, u32) {
        let n = self
            .file
            .partition_point(|e| u64::from(read_u32(e, 4)) <= position);
        match n.checked_sub(1) {
            Some(i) => self.get(i),
            None => (self.base_offset, 0),
        }
    }

    /// Drops every entry at or above `offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) {
        let n = self
            .file
            .partition_point(|e| self.base_offset + i64::from(read_u32(e, 0)) < offset);
        self.file.truncate(n);
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.file.truncate(0);
    }

    /// Whether every entry increases strictly in offset and position and points
    /// inside a file of `log_size` bytes (Kafka's index sanity check, done fully).
    #[cfg(test)]
    pub(crate) fn is_consistent(&self, log_size: u64) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.file.len() {
            let (off, pos) = self.get(i);
            if u64::from(pos) >= log_size.max(1) {
                return false;
            }
            if let Some((po, pp)) = prev
                && (off <= po || pos <= pp)
            {
                return false;
            }
            prev = Some((off, pos));
        }
        true
    }
}

/// Sparse map from timestamp to offset.
///
/// Entry: timestamp (i64 BE), relative offset (u32 BE). An entry `(t, o)` says that
/// no batch before the one holding offset `o` has a max timestamp above `t`, and that
/// batch's max timestamp is `t` (it is the largest timestamp so far in the segment).
/// Timestamps and offsets both increase strictly.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    /// Opens or creates the index, sized for `max_bytes` when `active`, else trimmed.
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        active: bool,
        max_bytes: u32,
    ) -> io::Result<Self> {
        let capacity = if active {
            capacity(max_bytes, TIME_ENTRY)
        } else {
            0
        };
        Ok(Self {
            file: IndexFile::open(path, TIME_ENTRY, 8, capacity)?,
            base_offset,
        })
    }

    pub(crate) fn inner(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn file(&self) -> &IndexFile {
        &self.file
    }

    /// Entry `i` as (timestamp, absolute offset).
    pub(crate) fn get(&self, i: usize) -> (i64, i64) {
        let e = self.file.entry(i);
        (read_i64(e, 0), self.base_offset + i64::from(read_u32(e, 8)))
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<(i64, i64)> {
        self.file.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Adds `(timestamp, offset)` if both are above the last entry's. Returns false
    /// if the entry was not needed or the index is full.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: i64) -> bool {
        if let Some((t, o)) = self.last()
            && (timestamp <= t || offset <= o)
        {
            return false;
        }
        if offset == self.base_offset && self.file.len() == 0 && timestamp == 0 {
            // An all-zero first entry is indistinguishable from preallocated space.
            return false;
        }
        let rel = (offset - self.base_offset) as u32;
        let mut e = [0u8; TIME_ENTRY];
        e[0..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..12].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&e)
    }

    /// The entry with the largest timestamp strictly below `timestamp`: every batch
    /// before the one holding its offset has a max timestamp below `timestamp` too.
    pub(crate) fn lookup_below(&self, timestamp: i64) -> Option<(i64, i64)> {
        let n = self.file.partition_point(|e| read_i64(e, 0) < timestamp);
        n.checked_sub(1).map(|i| self.get(i))
    }

    /// Drops every entry at or above `offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) {
        let n = self
            .file
            .partition_point(|e| self.base_offset + i64::from(read_u32(e, 8)) < offset);
        self.file.truncate(n);
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.file.truncate(0);
    }

    /// Whether timestamps and offsets increase strictly and offsets stay below
    /// `next_offset`.
    #[cfg(test)]
    pub(crate) fn is_consistent(&self, next_offset: i64) -> bool {
        let mut prev: Option<(i64, i64)> = None;
        for i in 0..self.file.len() {
            let (ts, off) = self.get(i);
            if off >= next_offset.max(self.base_offset + 1) {
                return false;
            }
            if let Some((pt, po)) = prev
                && (ts <= pt || off <= po)
            {
                return false;
            }
            prev = Some((ts, off));
        }
        true
    }
}

/// Entries that fit in `max_bytes`; at least one, so that a tiny setting still makes
/// progress (it then rolls the segment after every index entry).
pub(crate) fn capacity(max_bytes: u32, entry_size: usize) -> usize {
    (max_bytes as usize / entry_size).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, 100, true, 80).expect("open");
        assert_eq!(idx.lookup(150), (100, 0));
        assert!(idx.append(110, 1000));
        assert!(idx.append(120, 2000));
        assert!(idx.append(130, 3000));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 1000));
        assert_eq!(idx.lookup(125), (120, 2000));
        assert_eq!(idx.lookup(1_000_000), (130, 3000));
        assert_eq!(idx.lookup_position(2500), (120, 2000));
        assert_eq!(idx.lookup_position(999), (100, 0));
        assert!(idx.is_consistent(3001));
        assert!(!idx.is_consistent(3000));
        idx.truncate_to_offset(120);
        assert_eq!(idx.last(), Some((110, 1000)));
        assert_eq!(idx.file().len(), 1);
    }

    #[test]
    fn preallocated_tail_is_not_mistaken_for_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open(&path, 0, true, 800).expect("open");
            for i in 0..7 {
                assert!(idx.append(i * 10 + 5, (i as u32 + 1) * 100));
            }
            idx.file().flush().expect("flush");
            // Dropped without trimming, as in a crash.
        }
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 800);
        let idx = OffsetIndex::open(&path, 0, false, 800).expect("reopen");
        assert_eq!(idx.file().len(), 7);
        assert_eq!(idx.last(), Some((65, 700)));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 56);
        // Re-extended when it becomes active again.
        let idx = OffsetIndex::open(&path, 0, true, 800).expect("reopen active");
        assert_eq!(idx.file().len(), 7);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 800);
    }

    /// Real entries of raw offset-index files (rel u32, position u32), as found
    /// after a crash or a trim.
    #[test]
    fn real_entries_are_counted_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = |rel: u32, pos: u32| [rel.to_be_bytes(), pos.to_be_bytes()].concat();
        let zeros = |n: usize| vec![0u8; n * OFFSET_ENTRY];
        let cases: Vec<(&str, Vec<u8>, usize)> = vec![
            ("empty", vec![], 0),
            ("one zero entry", zeros(1), 0),
            ("offset 0 at a position", entry(0, 100), 1),
            (
                "three then zeros",
                [entry(0, 0), entry(5, 10), entry(9, 20), zeros(50)].concat(),
                3,
            ),
            (
                "first zero, then one",
                [entry(0, 0), entry(4, 40), zeros(9)].concat(),
                2,
            ),
            (
                "full (trimmed)",
                [entry(1, 1), entry(2, 2), entry(3, 3)].concat(),
                3,
            ),
            ("all zeros, preallocated", zeros(1000), 0),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).expect("write");
            let file = File::open(&path).expect("open");
            let total = bytes.len() / OFFSET_ENTRY;
            let got = count_real_entries(&file, total, OFFSET_ENTRY, 0).expect("count");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn full_index_refuses_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx = OffsetIndex::open(&dir.path().join("i"), 0, true, 16).expect("open");
        assert!(idx.append(1, 10));
        assert!(idx.append(2, 20));
        assert!(idx.file().is_full());
        assert!(!idx.append(3, 30));
        assert_eq!(idx.file().len(), 2);
    }

    #[test]
    fn time_index_lookup_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx = TimeIndex::open(&dir.path().join("t"), 50, true, 120).expect("open");
        assert!(idx.maybe_append(1000, 55));
        assert!(!idx.maybe_append(1000, 60), "timestamp must increase");
        assert!(idx.maybe_append(2000, 60));
        assert!(!idx.maybe_append(3000, 60), "offset must increase");
        assert!(idx.maybe_append(3000, 70));
        assert_eq!(idx.lookup_below(1000), None);
        assert_eq!(idx.lookup_below(1001), Some((1000, 55)));
        assert_eq!(idx.lookup_below(2500), Some((2000, 60)));
        assert_eq!(idx.lookup_below(i64::MAX), Some((3000, 70)));
        assert!(idx.is_consistent(71));
        assert!(!idx.is_consistent(70));
        idx.truncate_to_offset(60);
        assert_eq!(idx.last(), Some((1000, 55)));
    }
}
