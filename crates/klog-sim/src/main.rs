//! `klog-sim`: runs seeds of the cluster simulation (see the crate docs).
//!
//! ```text
//! klog-sim --seeds 1000            seeds 0..1000, a line per failure, a summary
//! klog-sim --from 5000 --seeds 100 seeds 5000..5100
//! klog-sim --seed 17 --trace       one seed, with what happened step by step
//! klog-sim --seed 17 --schedule    one seed's fault schedule, without running it
//! klog-sim --seeds 200 --expect-failure   (built with --features mutation) the
//!                                  mutation check: succeeds only if a seed fails
//! ```
//!
//! A sweep runs each seed in a process of its own (this binary, `--seed S
//! --worker`), one per core at a time, so that each runs exactly as its replay
//! command does (see the crate docs' Replay).

use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;

/// The simulation thread's stack (the main thread's size: debug builds of the
/// whole cluster's futures are deep).
const SIM_STACK: usize = 8 << 20;

/// The last line a `--worker` run prints: `<prefix> <passed: 0|1> <acknowledged>`.
const RESULT_PREFIX: &str = "klog-sim-result";

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of a klog cluster under seeded faults")]
struct Args {
    /// Run this one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// How many seeds to run (from --from).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Print the trace of the run (with --seed).
    #[arg(long)]
    trace: bool,
    /// Print the fault schedule only (with --seed).
    #[arg(long)]
    schedule: bool,
    /// Records the producer sends per seed.
    #[arg(long, default_value_t = 200)]
    records: u64,
    /// Nodes per cluster, 3 to 5 (each a controller voter and a broker).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    nodes: u8,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Succeed only if some seed fails (the mutation check, with a bug planted).
    #[arg(long)]
    expect_failure: bool,
    /// (With --seed; how a sweep runs each seed.) Print the report only if the
    /// seed failed, then a result line for the sweep to read.
    #[arg(long, hide = true)]
    worker: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Ok(filter) = std::env::var("KLOG_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_timer(SimulatedTime)
            .init();
    }
    match args.seed {
        Some(seed) => run_one(&args, seed),
        None => sweep(&args),
    }
}

/// One seed, in this process: the replay, and each seed of a sweep.
fn run_one(args: &Args, seed: u64) -> ExitCode {
    let mut options = klog_sim::Options::new(seed);
    options.records = args.records;
    options.nodes = usize::from(args.nodes);
    if args.schedule {
        let s = klog_sim::faults::Schedule::generate(
            seed,
            options.nodes,
            klog_sim::FAULTS_FROM,
            klog_sim::FAULTS_UNTIL,
        );
        print!("{s}");
        return ExitCode::SUCCESS;
    }
    options.trace = args.trace;
    // The run's entropy (HashMap keys, tokio's seeds, ids) from the seed, so
    // that it takes the same steps each time (see klog_sim::entropy). It runs
    // on a thread of its own, whose HashMap keys are drawn after the seed,
    // whatever this thread (the command line, the log filter) drew before.
    if !klog_sim::entropy::active() {
        eprintln!("klog-sim: getrandom is not this binary's; runs would not replay exactly");
        return ExitCode::FAILURE;
    }
    klog_sim::entropy::seed(seed);
    let run = std::thread::Builder::new()
        .name("klog-sim".to_owned())
        .stack_size(SIM_STACK)
        .spawn(move || klog_sim::run(&options))
        .map(std::thread::JoinHandle::join);
    let report = match run {
        Ok(Ok(report)) => report,
        Ok(Err(_)) => {
            eprintln!("seed {seed}: the simulation panicked");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("klog-sim: cannot start the simulation's thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.worker || !report.passed() {
        print!("{report}");
    }
    if args.worker {
        println!(
            "{RESULT_PREFIX} {} {}",
            u8::from(report.passed()),
            report.acked
        );
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a worker process said about its seed.
struct Outcome {
    /// Whether the seed passed, and the records it acknowledged; `None` if the
    /// worker did not get as far as a result (it could not start, or died).
    result: Option<(bool, usize)>,
    /// What it printed before its result line (its report, if it failed), or
    /// why there is no result.
    output: String,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.result.is_some_and(|(passed, _)| passed)
    }
}

/// Runs `seed` in a process of its own (this binary, `--seed S --worker`):
/// nothing of an earlier seed (HashMap keys drawn, counters, tokio's seeds)
/// leaks into it, so it runs exactly as `klog-sim --seed S` does.
fn run_worker(args: &Args, seed: u64) -> Outcome {
    let no_result = |output: String| Outcome {
        result: None,
        output,
    };
    // This very binary: /proc/self/exe stays this process's image even when a
    // build replaces the file on disk during a sweep.
    let exe = std::path::PathBuf::from("/proc/self/exe");
    let out = Command::new(exe)
        .args(["--seed", &seed.to_string(), "--worker"])
        .args(["--records", &args.records.to_string()])
        .args(["--nodes", &args.nodes.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return no_result(format!("seed {seed}: FAILED: cannot start a worker: {e}\n")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (output, last) = match stdout.trim_end().rsplit_once('\n') {
        Some((output, last)) => (format!("{output}\n"), last),
        None => (String::new(), stdout.trim_end()),
    };
    let result: Vec<&str> = last.split(' ').collect();
    match result[..] {
        [RESULT_PREFIX, passed, acked] => Outcome {
            result: Some((passed == "1", acked.parse().unwrap_or(0))),
            output,
        },
        _ => no_result(format!(
            "{stdout}seed {seed}: FAILED: its process ended ({}) without a result\nreplay: scripts/sim --seed {seed} --trace\n",
            out.status
        )),
    }
}

/// Seeds `--from`..`--from + --seeds`, each in a process of its own, one per
/// core at a time.
fn sweep(args: &Args) -> ExitCode {
    let started = Instant::now();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // Each worker thread runs whole seeds, one process after another; seeds are
    // handed out in order.
    let next = AtomicU64::new(args.from);
    let end = args.from + args.seeds;
    // (failed, acknowledged, seeds run)
    let results = Mutex::new((Vec::new(), 0usize, 0u64));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let caught = || !results.lock().map(|r| r.0.is_empty()).unwrap_or(true);
                    if seed >= end || (args.expect_failure && caught()) {
                        return;
                    }
                    let outcome = run_worker(args, seed);
                    // A seed that ran and failed is replayed once, in a fresh
                    // process, to show that the replay command repeats it.
                    // (Not in the mutation check, which wants any failure.)
                    let ran_and_failed = outcome.result.is_some() && !outcome.passed();
                    let replay =
                        (ran_and_failed && !args.expect_failure).then(|| run_worker(args, seed));
                    let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                    r.1 += outcome.result.map_or(0, |(_, acked)| acked);
                    r.2 += 1;
                    if outcome.passed() {
                        continue;
                    }
                    print!("{}", outcome.output);
                    match replay {
                        Some(replay) if replay.output == outcome.output => {
                            println!("seed {seed}: replayed, failed the same way");
                        }
                        Some(replay) => {
                            println!(
                                "seed {seed}: REPLAY DIFFERED (the run is not deterministic: a bug in the simulation); the replay:"
                            );
                            print!("{}", replay.output);
                        }
                        None => {}
                    }
                    r.0.push(seed);
                }
            });
        }
    });
    let (mut failed, acked, ran) = results.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_unstable();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{ran} seeds from {} in {secs:.1} s ({:.2} seeds/s), {acked} records acknowledged, {} failed{}",
        args.from,
        ran as f64 / secs,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {failed:?}")
        }
    );
    if args.expect_failure {
        // The mutation check: a planted bug must be caught.
        return if failed.is_empty() {
            println!("expected a failure (a planted bug), but every seed passed");
            ExitCode::FAILURE
        } else {
            println!("the planted bug was caught, as expected");
            ExitCode::SUCCESS
        };
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Log lines stamped with the simulation's time (the wall clock's would differ
/// from one replay to the next).
struct SimulatedTime;

impl tracing_subscriber::fmt::time::FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}
