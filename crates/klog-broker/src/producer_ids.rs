//! Producer ids of a data dir from before the metadata quorum.
//!
//! A single node used to hand out producer ids from blocks reserved in
//! `producer-id-block` (the first id of the next unreserved block, fsynced before
//! any id of a block was used). The controller now hands out blocks recorded in
//! the metadata log (`AllocateProducerIds`); when it seeds an empty log from such a
//! data dir, it starts after the ids this file reserved, so that no id is ever
//! handed out twice.

use std::path::Path;

/// The file that held the first id of the next unreserved block.
pub const FILE: &str = "producer-id-block";

/// The first producer id a data dir from before the quorum has not reserved
/// (`None` without the file).
pub fn next_unreserved(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
