//! The command-line tools end to end against the real broker binary: lines piped
//! into `klog-producer` come out of `klog-consumer` unchanged, `klog-admin`
//! creates, lists, describes and deletes topics, and both perf modes complete.
//!
//! `klog-consumer` is this package's binary; `klog-broker`, `klog-producer` and
//! `klog-admin` are found as `$KLOG_BROKER_BIN`, `$KLOG_PRODUCER_BIN`,
//! `$KLOG_ADMIN_BIN`, or in `<target dir>/debug/` (build them first:
//! `cargo build -p klog-broker-bin -p klog-producer -p klog-admin`; scripts/test
//! does).

use std::path::PathBuf;
use std::process::{Command, Output};

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

#[test]
fn lines_piped_through_producer_come_out_of_consumer_unchanged() {
    let broker = Broker::start();
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
            "lines",
            "--partitions",
            "1",
        ],
        b"",
    );
    let mut input = String::new();
    for i in 0..500 {
        input.push_str(&format!(
            "line {i} with ünïcödé and\ttabs {}\n",
            "z".repeat(i % 40)
        ));
    }
    input.push('\n'); // an empty record
    input.push_str("last\n");
    let lines = input.lines().count().to_string();
    run(
        producer(),
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "lines",
            "--compression",
            "lz4",
            "--acks",
            "all",
        ],
        input.as_bytes(),
    );
    let out = run(
        consumer(),
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "lines",
            "--from-beginning",
            "--max-messages",
            &lines,
        ],
        b"",
    );
    assert_eq!(stdout(&out), input);

    // Keys: parse.key on the way in, print.key on the way out.
    run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "keyed",
            "--partitions",
            "1",
        ],
        b"",
    );
    let keyed = "k1:v1\nk2:v:with:colons\nk1:v3\n";
    run(
        producer(),
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "keyed",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        keyed.as_bytes(),
    );
    let out = run(
        consumer(),
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "keyed",
            "--partition",
            "0",
            "--offset",
            "0",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
        ],
        b"",
    );
    assert_eq!(stdout(&out), keyed);
    // --offset reads from that offset on.
    let out = run(
        consumer(),
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "keyed",
            "--partition",
            "0",
            "--offset",
            "2",
            "--max-messages",
            "1",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "v3\n");
}

#[test]
fn admin_creates_lists_describes_and_deletes_topics() {
    let broker = Broker::start();
    let addr = broker.addr();
    let b = addr.as_str();
    let out = run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "Created topic orders.\n");
    run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "audit",
            "--partitions",
            "1",
        ],
        b"",
    );
    let out = run(admin(), &["--bootstrap-server", b, "topics", "list"], b"");
    // The broker creates the internal __consumer_offsets topic at start-up; like
    // kafka-topics --list, internal topics are listed.
    assert_eq!(stdout(&out), "__consumer_offsets\naudit\norders\n");

    let out = run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "describe",
            "--topic",
            "orders",
        ],
        b"",
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    let head = lines.next().expect("topic line");
    assert!(
        head.starts_with("Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\t"),
        "{head}"
    );
    assert!(head.contains("retention.ms=3600000"), "{head}");
    let partitions: Vec<&str> = lines.collect();
    assert_eq!(partitions.len(), 3, "{text}");
    for (i, l) in partitions.iter().enumerate() {
        assert!(l.contains(&format!("Partition: {i}\tLeader: ")), "{l}");
    }

    // Creating it again fails, unless --if-not-exists.
    let again = Command::new(admin())
        .args([
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "orders",
        ])
        .output()
        .expect("run");
    assert!(!again.status.success());
    run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "create",
            "--topic",
            "orders",
            "--if-not-exists",
        ],
        b"",
    );

    let out = run(
        admin(),
        &[
            "--bootstrap-server",
            b,
            "topics",
            "delete",
            "--topic",
            "orders",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "Deleted topic orders.\n");
    let out = run(admin(), &["--bootstrap-server", b, "topics", "list"], b"");
    assert_eq!(stdout(&out), "__consumer_offsets\naudit\n");
    let gone = Command::new(admin())
        .args([
            "--bootstrap-server",
            b,
            "topics",
            "describe",
            "--topic",
            "orders",
        ])
        .output()
        .expect("run");
    assert!(
        !gone.status.success(),
        "describe of a deleted topic succeeded"
    );
}

#[test]
fn perf_modes_report_what_they_did() {
    let broker = Broker::start();
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
            "perf",
            "--partitions",
            "2",
        ],
        b"",
    );
    let out = run(
        producer(),
        &[
            "perf",
            "--bootstrap-server",
            b,
            "--topic",
            "perf",
            "--num-records",
            "5000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--compression",
            "snappy",
            "--linger-ms",
            "2",
        ],
        b"",
    );
    let text = stdout(&out);
    let last = text.lines().last().expect("summary line");
    assert!(last.starts_with("5000 records sent, "), "{last}");
    for part in [
        "records/sec (",
        "MiB/sec), ",
        "ms avg latency, ",
        "ms max latency, ",
        "ms 50th, ",
        "ms 95th, ",
        "ms 99th, ",
        "ms 99.9th.",
    ] {
        assert!(last.contains(part), "{part:?} missing in {last}");
    }
    let out = run(
        consumer(),
        &[
            "perf",
            "--bootstrap-server",
            b,
            "--topic",
            "perf",
            "--messages",
            "5000",
        ],
        b"",
    );
    let text = stdout(&out);
    let last = text.lines().last().expect("summary line");
    assert!(last.starts_with("5000 records received, "), "{last}");
    assert!(
        last.contains("records/sec (") && last.contains("MiB/sec)"),
        "{last}"
    );
    // 5000 records of 100 bytes: 0.48 MiB.
    assert!(last.contains("0.48 MiB in "), "{last}");
}
