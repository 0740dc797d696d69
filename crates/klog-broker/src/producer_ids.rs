//! Producer id allocation for idempotent producers (InitProducerId).
//!
//! Ids must never be reused, including across restarts, or a new producer could be
//! mistaken for an old one's duplicate. Ids are handed out from blocks of
//! [`BLOCK_SIZE`]; before the first id of a block is used, the end of that block is
//! written (fsynced) to `producer-id-block`, so after any crash the next start
//! begins past every id that may have been handed out.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File holding the first id of the next unallocated block.
pub const FILE: &str = "producer-id-block";
/// Ids per block.
pub const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    /// Opens the allocator in `dir`, starting after the last reserved block.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let next = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            next,
            block_end: next,
        })
    }

    /// The next producer id.
    pub fn allocate(&mut self) -> std::io::Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + BLOCK_SIZE;
            let tmp = self.path.with_extension("tmp");
            {
                let mut f = std::fs::File::create(&tmp)?;
                writeln!(f, "{end}")?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &self.path)?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = ProducerIdAllocator::open(dir.path()).expect("open");
        assert_eq!(a.allocate().expect("id"), 0);
        assert_eq!(a.allocate().expect("id"), 1);
        drop(a);
        let mut b = ProducerIdAllocator::open(dir.path()).expect("reopen");
        assert_eq!(b.allocate().expect("id"), BLOCK_SIZE);
        for _ in 0..BLOCK_SIZE {
            b.allocate().expect("id");
        }
        let mut c = ProducerIdAllocator::open(dir.path()).expect("reopen");
        assert_eq!(c.allocate().expect("id"), 3 * BLOCK_SIZE);
    }
}
