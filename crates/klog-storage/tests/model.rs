//! Property test: random sequences of operations on a [`Log`] against a simple
//! in-memory model (a vector of batches and three offsets).
//!
//! After every step the log must hold exactly the model's batches, byte for byte,
//! with the model's log start, high watermark and log end offsets, and every read
//! must return what the model says Fetch should (whole batches, KIP-74 first batch,
//! never at or past `max_offset`).

mod support;

use std::path::Path;

use klog_storage::{Log, LogConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// One append call with batches of (records, payload bytes).
    Append(Vec<(i32, usize)>),
    /// Read at a fraction of [log start, log end], optionally capped by the HW.
    Read {
        at: u16,
        max_bytes: u16,
        to_hw: bool,
    },
    Roll,
    /// Truncate at a fraction of [log start, log end].
    Truncate(u16),
    /// Move the high watermark to a fraction of [log start, log end].
    SetHw(u16),
    /// DeleteRecords at a fraction of [log start, high watermark].
    DeleteRecords(u16),
    /// Retention by size with this limit.
    RetainBytes(u16),
    Flush,
    /// Close and reopen as after a clean shutdown.
    Reopen,
    /// Drop without closing and reopen with recovery from the recovery point.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1i32..5, 0usize..160), 1..4).prop_map(Op::Append),
        3 => (any::<u16>(), any::<u16>(), any::<bool>())
            .prop_map(|(at, max_bytes, to_hw)| Op::Read { at, max_bytes: max_bytes % 1500, to_hw }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(Op::Truncate),
        2 => any::<u16>().prop_map(Op::SetHw),
        1 => any::<u16>().prop_map(Op::DeleteRecords),
        1 => (200u16..3000).prop_map(Op::RetainBytes),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        prop::sample::select(vec![300u64, 700, 2000]),
        prop::sample::select(vec![0u32, 64, 200]),
        prop::sample::select(vec![16u32, 64, 1024]),
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, segment_index_bytes)| LogConfig {
                segment_bytes,
                index_interval_bytes,
                segment_index_bytes,
                retention_ms: None,
                ..LogConfig::default()
            },
        )
}

#[derive(Debug, Clone)]
struct Batch {
    first: i64,
    last: i64,
    bytes: Vec<u8>,
}

/// The model: batches physically present, and the three offsets.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<Batch>,
    log_start: i64,
    hw: i64,
    leo: i64,
}

impl Model {
    fn frac(lo: i64, hi: i64, f: u16) -> i64 {
        lo + ((hi - lo) as i128 * i128::from(f) / i128::from(u16::MAX)) as i64
    }

    /// What `read(offset, max_bytes, max_offset)` must return.
    fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Vec<u8> {
        let limit = max_offset.min(self.leo);
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.last >= offset) {
            if b.last >= limit {
                break;
            }
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out
    }

    /// Drops batches in segments the log deleted.
    fn drop_below(&mut self, first_segment_base: i64) {
        self.batches.retain(|b| b.first >= first_segment_base);
    }
}

fn reopen(dir: &Path, config: &LogConfig, clean: bool, rp: i64, model: &Model) -> Log {
    let mut log = Log::open_with_recovery_point(dir, config.clone(), rp, clean, 0).expect("reopen");
    // What LogManager restores from its checkpoints.
    log.set_high_watermark(model.hw);
    log.delete_records_before(model.log_start)
        .expect("restore log start");
    log
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), model.leo);
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    prop_assert_eq!(log.high_watermark(), model.hw);
    prop_assert!(log.recovery_point() <= log.log_end_offset());
    let segs = log.segments();
    prop_assert!(segs[0].base_offset <= model.log_start);
    for w in segs.windows(2) {
        prop_assert_eq!(w[0].next_offset, w[1].base_offset);
    }
    let all = log
        .read_to_vec(model.log_start, usize::MAX, i64::MAX)
        .expect("read all");
    prop_assert!(all == model.read(model.log_start, usize::MAX, i64::MAX));
    Ok(())
}

fn run(config: LogConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config.clone(), 0).expect("open");
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let now = step as i64;
        match op {
            Op::Append(specs) => {
                let mut records = Vec::new();
                for (n, len) in &specs {
                    records.extend(support::batch(*n, *len, now));
                }
                let info = log.append(&mut records, 0, now).expect("append");
                prop_assert_eq!(info.first_offset, m.leo);
                let mut pos = 0;
                for (n, len) in specs {
                    let size = 61 + len;
                    m.batches.push(Batch {
                        first: m.leo,
                        last: m.leo + i64::from(n) - 1,
                        bytes: records[pos..pos + size].to_vec(),
                    });
                    m.leo += i64::from(n);
                    pos += size;
                }
            }
            Op::Read {
                at,
                max_bytes,
                to_hw,
            } => {
                let offset = Model::frac(m.log_start, m.leo, at);
                let max_offset = if to_hw { m.hw } else { m.leo };
                let got = log
                    .read_to_vec(offset, max_bytes as usize, max_offset)
                    .expect("read");
                prop_assert!(
                    got == m.read(offset, max_bytes as usize, max_offset),
                    "read({}, {}, {}) differs",
                    offset,
                    max_bytes,
                    max_offset
                );
                let r = log
                    .read(offset, max_bytes as usize, max_offset)
                    .expect("read");
                prop_assert_eq!(r.total_bytes, got.len() as u64);
                prop_assert_eq!(
                    r.first_offset,
                    m.batches
                        .iter()
                        .find(|b| b.last >= offset)
                        .filter(|_| !got.is_empty())
                        .map(|b| b.first)
                );
            }
            Op::Roll => log.roll().expect("roll"),
            Op::Truncate(f) => {
                let offset = Model::frac(m.log_start, m.leo, f);
                log.truncate_to(offset).expect("truncate");
                if offset < m.leo
                    && let Some(i) = m.batches.iter().position(|b| b.last >= offset)
                {
                    m.leo = m.batches[i].first;
                    m.batches.truncate(i);
                    m.log_start = m.log_start.min(m.leo);
                    m.hw = m.hw.min(m.leo);
                }
            }
            Op::SetHw(f) => {
                m.hw = Model::frac(m.log_start, m.leo, f);
                log.set_high_watermark(m.hw);
            }
            Op::DeleteRecords(f) => {
                let offset = Model::frac(m.log_start, m.hw, f);
                log.delete_records_before(offset).expect("delete records");
                m.log_start = m.log_start.max(offset);
                m.drop_below(log.segments()[0].base_offset);
            }
            Op::RetainBytes(limit) => {
                let mut c = config.clone();
                c.retention_bytes = Some(u64::from(limit));
                log.set_config(c);
                let before = log.size_bytes();
                log.apply_retention(now).expect("retention");
                log.set_config(config.clone());
                let segs = log.segments();
                let (limit, after) = (u64::from(limit), log.size_bytes());
                if before > limit {
                    prop_assert!(after >= limit, "deleted more than the excess");
                } else {
                    prop_assert_eq!(after, before);
                }
                if segs.len() > 1 {
                    prop_assert!(after - segs[0].size < limit, "stopped too early");
                }
                m.drop_below(segs[0].base_offset);
                m.log_start = m.log_start.max(segs[0].base_offset);
                m.hw = m.hw.max(m.log_start);
            }
            Op::Flush => {
                log.flush().expect("flush");
                prop_assert_eq!(log.recovery_point(), m.leo);
            }
            Op::Reopen => {
                let rp = log.log_end_offset();
                log.close().expect("close");
                log = reopen(dir.path(), &config, true, rp, &m);
            }
            Op::Crash => {
                let rp = log.recovery_point();
                drop(log);
                log = reopen(dir.path(), &config, false, rp, &m);
                let report = log.recovery_report().expect("recovery ran");
                prop_assert!(report.cut.is_none(), "nothing was lost: {:?}", report);
            }
        }
        check(&log, &m)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(config in config(), ops in prop::collection::vec(op(), 1..40)) {
        run(config, ops)?;
    }
}
