//! Consumer groups: the runtime that drives the sans-IO group coordinator of
//! `klog-coordinator` and keeps its records in `__consumer_offsets`.

pub mod runtime;
