//! Seeds that once failed (kept as regression cases), and a short sweep. The CI's
//! 1,000-seed run and the mutation check are `scripts/sim` (see scripts/test).

use std::sync::mpsc;
use std::time::Duration;

/// Seeds that found a bug, with what it was.
const REGRESSIONS: &[(u64, &str)] = &[
    // The producer's sender spun without yielding while it had no topic yet (it
    // refreshed metadata for no topics and woke itself again): under simulated
    // time the first step never ended. Any seed hung; 1 was the first run.
    (1, "producer sender spin before its first record"),
];

/// Runs a seed on its own thread, failing the test if it does not finish within
/// `limit` of real time (a step that never ends is a spin in the code under test).
fn run_bounded(seed: u64, limit: Duration) -> klog_sim::Report {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(klog_sim::run(&klog_sim::Options::new(seed)));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("seed {seed} did not finish in {limit:?} (a spin?)"))
}

#[test]
fn regression_seeds_pass() {
    for &(seed, what) in REGRESSIONS {
        let report = run_bounded(seed, Duration::from_secs(120));
        assert!(
            report.passed(),
            "regression seed {seed} ({what}):\n{report}"
        );
        assert!(
            report.acked > 0,
            "seed {seed} acknowledged nothing:\n{report}"
        );
    }
}

#[test]
fn a_short_sweep_passes_and_makes_progress() {
    for seed in 100..104 {
        let report = run_bounded(seed, Duration::from_secs(120));
        assert!(report.passed(), "{report}");
        assert!(
            report.acked > 0,
            "seed {seed} acknowledged nothing:\n{report}"
        );
    }
}

#[test]
fn a_seed_replays_its_schedule() {
    let a =
        klog_sim::faults::Schedule::generate(9, 3, klog_sim::FAULTS_FROM, klog_sim::FAULTS_UNTIL);
    let report = run_bounded(9, Duration::from_secs(120));
    assert_eq!(report.schedule, a);
}
