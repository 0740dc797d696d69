//! `klog-consumer --group` and `klog-admin groups` end to end against the real
//! broker binary: a group consumes every line once, its committed offsets show as
//! CURRENT-OFFSET / LOG-END-OFFSET / LAG in `klog-admin groups describe`, and a
//! second run of the group resumes where the first stopped.
//!
//! Binaries as in `cli.rs`: `$KLOG_BROKER_BIN`, `$KLOG_PRODUCER_BIN`,
//! `$KLOG_ADMIN_BIN`, or `<target dir>/debug/`.

use std::path::PathBuf;
use std::process::Output;

use klog_test_support::{Broker, run_tool_ok, workspace_binary};

fn binary(env_var: &str, name: &str, package: &str) -> PathBuf {
    workspace_binary(env_var, name, &format!("cargo build -p {package}"))
}

/// Runs a tool with `stdin` (killed after 60 s) and asserts it succeeded.
fn run(program: PathBuf, args: &[&str], stdin: &[u8]) -> Output {
    run_tool_ok(&program, args, stdin)
}

fn producer() -> PathBuf {
    binary("KLOG_PRODUCER_BIN", "klog-producer", "klog-producer")
}

fn admin() -> PathBuf {
    binary("KLOG_ADMIN_BIN", "klog-admin", "klog-admin")
}

fn consumer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_klog-consumer"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

/// The LAG-table rows of `klog-admin groups describe` for `topic`:
/// (partition, current offset, log end offset, lag).
fn lag_rows(out: &str, topic: &str) -> Vec<(i32, String, i64, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[1] == topic).then(|| {
                (
                    f[2].parse().expect("partition"),
                    f[3].to_owned(),
                    f[4].parse().expect("log end"),
                    f[5].to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn group_consumer_commits_and_admin_reports_lag() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    let addr = broker.addr();
    let b = addr.as_str();
    run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "gl",
            "--partitions",
            "3",
        ],
        b"",
    );
    let first: String = (0..30).map(|i| format!("first {i}\n")).collect();
    run(
        producer(),
        &["--bootstrap-server", b, "--topic", "gl"],
        first.as_bytes(),
    );
    let group_args = |extra: &[&'static str]| {
        let mut v = vec![
            "--bootstrap-server",
            b,
            "--topic",
            "gl",
            "--group",
            "cli-group",
            "--consumer-property",
            "session.timeout.ms=10000",
            "--consumer-property",
            "heartbeat.interval.ms=500",
        ];
        v.extend_from_slice(extra);
        v
    };
    let out = run(
        consumer(),
        &group_args(&["--from-beginning", "--max-messages", "30"]),
        b"",
    );
    let text = stdout(&out);
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want: Vec<&str> = first.lines().collect();
    want.sort_unstable();
    assert_eq!(got, want);

    // Everything read was committed on exit: lag 0 everywhere.
    let list = run(admin(), &["--bootstrap-server", b, "groups", "list"], b"");
    assert!(
        stdout(&list).lines().any(|l| l == "cli-group"),
        "{}",
        stdout(&list)
    );
    let describe = |b: &str| {
        stdout(&run(
            admin(),
            &[
                "--bootstrap-server",
                b,
                "groups",
                "describe",
                "--group",
                "cli-group",
            ],
            b"",
        ))
    };
    let d = describe(b);
    assert!(d.contains("State: Empty"), "{d}");
    let rows = lag_rows(&d, "gl");
    assert_eq!(rows.len(), 3, "{d}");
    assert_eq!(rows.iter().map(|r| r.2).sum::<i64>(), 30, "{d}");
    for (_, current, end, lag) in &rows {
        assert_eq!(current, &end.to_string(), "{d}");
        assert_eq!(lag, "0", "{d}");
    }

    // 12 more lines: the lag says so, and the group's next run reads exactly those
    // (from its committed offsets; --from-beginning only applies without them).
    let second: String = (0..12).map(|i| format!("second {i}\n")).collect();
    run(
        producer(),
        &["--bootstrap-server", b, "--topic", "gl"],
        second.as_bytes(),
    );
    let d = describe(b);
    let rows = lag_rows(&d, "gl");
    let total_lag: i64 = rows.iter().map(|r| r.3.parse::<i64>().expect("lag")).sum();
    assert_eq!(total_lag, 12, "{d}");
    for (_, current, end, lag) in &rows {
        let current: i64 = current.parse().expect("current");
        assert_eq!(end - current, lag.parse::<i64>().expect("lag"), "{d}");
    }
    let out = run(
        consumer(),
        &group_args(&["--from-beginning", "--timeout-ms", "4000"]),
        b"",
    );
    let text = stdout(&out);
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want: Vec<&str> = second.lines().collect();
    want.sort_unstable();
    assert_eq!(got, want);
    let d = describe(b);
    let rows = lag_rows(&d, "gl");
    assert!(rows.iter().all(|r| r.3 == "0"), "{d}");
}
