//! Seeds that once failed (kept as regression cases), and a short sweep. The CI's
//! 1,000-seed run and the mutation check are `scripts/sim` (see scripts/test).

use std::sync::mpsc;
use std::time::Duration;

use klog_sim::faults::{Fault, Schedule, Scheduled};

/// Seeds that found a bug, with what it was.
const REGRESSIONS: &[(u64, &str)] = &[
    // The producer's sender spun without yielding while it had no topic yet (it
    // refreshed metadata for no topics and woke itself again): under simulated
    // time the first step never ended. Any seed hung; 1 was the first run.
    (1, "producer sender spin before its first record"),
];

/// Seeds that found a bug with a fault schedule, run with that schedule pinned
/// (so that they keep testing it if the generator changes).
fn pinned() -> Vec<(u64, &'static str, Schedule)> {
    let ms = Duration::from_millis;
    let at = |t: u64, fault: Fault| Scheduled { at: ms(t), fault };
    vec![
        // Power loss of the last ISR member while an ELR member that had only
        // been killed (page cache intact) was down: the controller elected the
        // power-lost broker as the last known leader, and acknowledged records
        // were lost. Fixed by the boot id (a kill -9 is not a loss) and by not
        // falling back to a leader that lost writes while the ELR has a member.
        (
            58,
            "power-lost last leader elected over an intact ELR member",
            Schedule {
                faults: vec![
                    at(
                        4283,
                        Fault::Crash {
                            node: 1,
                            down: ms(639),
                        },
                    ),
                    at(
                        4342,
                        Fault::Hold {
                            a: 1,
                            b: 3,
                            span: ms(1432),
                        },
                    ),
                    at(
                        6786,
                        Fault::Crash {
                            node: 3,
                            down: ms(5371),
                        },
                    ),
                    at(
                        7047,
                        Fault::Isolate {
                            node: 3,
                            span: ms(1191),
                        },
                    ),
                    at(
                        9632,
                        Fault::Crash {
                            node: 1,
                            down: ms(6535),
                        },
                    ),
                    at(
                        11250,
                        Fault::PowerLoss {
                            node: 2,
                            down: ms(1963),
                        },
                    ),
                ],
            },
        ),
        // The group coordinator led __consumer_offsets-0 at epoch 1 and, after an
        // isolation, at epoch 3 with no leader change it saw in between: the
        // partition was loaded over the old groups, one member waited forever
        // in a JoinGroup. Fixed by unloading before every load.
        (
            183,
            "groups loaded over a previous epoch's, a JoinGroup never answered",
            Schedule {
                faults: vec![
                    at(
                        5914,
                        Fault::Crash {
                            node: 1,
                            down: ms(7905),
                        },
                    ),
                    at(
                        8125,
                        Fault::PowerLoss {
                            node: 3,
                            down: ms(2133),
                        },
                    ),
                    at(
                        9838,
                        Fault::Isolate {
                            node: 2,
                            span: ms(7322),
                        },
                    ),
                    at(
                        10598,
                        Fault::OneWay {
                            from: 2,
                            to: 3,
                            span: ms(5452),
                        },
                    ),
                    at(
                        12466,
                        Fault::Isolate {
                            node: 1,
                            span: ms(1061),
                        },
                    ),
                ],
            },
        ),
        // Two members in the group; n1, the group coordinator, isolated. After the
        // heal n1 still believed it led __consumer_offsets-0 and answered a
        // SyncGroup whose assignment it had not replicated (and never would: it
        // was truncated away). The members rejoined at n2, which started the
        // group over at generation 1 and handed out member ids counting from 1
        // with the same seed n1 had used (every coordinator mixed in its start
        // time, the same millisecond on every node): two clients became one
        // member, both took every partition, and one committed 0 for sim-2 after
        // the other had committed 66. Fixed by SyncGroup answering only once the
        // group's records are on the ISR, and by random member-id seeds.
        (
            146,
            "SyncGroup answered unreplicated; member ids repeated across coordinators",
            Schedule {
                faults: vec![at(
                    5712,
                    Fault::Isolate {
                        node: 1,
                        span: ms(3906),
                    },
                )],
            },
        ),
    ]
}

/// Runs a seed on its own thread, failing the test if it does not finish within
/// `limit` of real time (a step that never ends is a spin in the code under test).
fn run_bounded(seed: u64, limit: Duration) -> klog_sim::Report {
    run_options(klog_sim::Options::new(seed), limit)
}

fn run_options(options: klog_sim::Options, limit: Duration) -> klog_sim::Report {
    let seed = options.seed;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(klog_sim::run(&options));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("seed {seed} did not finish in {limit:?} (a spin?)"))
}

/// Asserts that a regression case passed and acknowledged records.
fn assert_regression_passed(seed: u64, what: &str, report: &klog_sim::Report) {
    assert!(
        report.passed(),
        "regression seed {seed} ({what}):\n{report}"
    );
    assert!(
        report.acked > 0,
        "seed {seed} acknowledged nothing:\n{report}"
    );
}

#[test]
fn regression_seeds_pass() {
    for &(seed, what) in REGRESSIONS {
        let report = run_bounded(seed, Duration::from_secs(120));
        assert_regression_passed(seed, what, &report);
    }
}

#[test]
fn pinned_regression_schedules_pass() {
    for (seed, what, schedule) in pinned() {
        let mut options = klog_sim::Options::new(seed);
        options.schedule = Some(schedule);
        let report = run_options(options, Duration::from_secs(180));
        assert_regression_passed(seed, what, &report);
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
