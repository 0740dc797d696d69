//! `klog-admin` end to end against the real broker binary (issue 7: "the admin tool
//! exposes all of the above"): configs alter/describe (and a restart keeps them),
//! topics add-partitions, records delete + offsets, log-dirs describe, cluster
//! describe and groups offsets.
//!
//! Binaries: `$KLOG_BROKER_BIN`, `$KLOG_PRODUCER_BIN`, `$KLOG_ADMIN_BIN`, or
//! `<target dir>/debug/` (`cargo build -p klog-broker-bin -p klog-producer
//! -p klog-admin`; scripts/test does).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use klog_test_support::{Broker, workspace_binary};

fn binary(env_var: &str, name: &str, package: &str) -> PathBuf {
    workspace_binary(env_var, name, &format!("cargo build -p {package}"))
}

/// A broker whose groups rebalance without the initial delay.
fn start_broker() -> Broker {
    Broker::start_with(&["group.initial.rebalance.delay.ms=0"])
}

/// Runs klog-admin; returns stdout, panicking with stderr if it fails.
fn admin(broker: &Broker, args: &[&str]) -> String {
    let (ok, out, err) = admin_status(broker, args);
    assert!(ok, "klog-admin {args:?} failed: {err}");
    out
}

fn admin_status(broker: &Broker, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("KLOG_ADMIN_BIN", "klog-admin", "klog-admin"))
        .arg("--bootstrap-server")
        .arg(broker.addr())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run klog-admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn produce(broker: &Broker, topic: &str, lines: usize) {
    let mut child = Command::new(binary(
        "KLOG_PRODUCER_BIN",
        "klog-producer",
        "klog-producer",
    ))
    .args(["--bootstrap-server", &broker.addr(), "--topic", topic])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn klog-producer");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..lines {
        writeln!(stdin, "line-{i}").expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("producer");
    assert!(
        out.status.success(),
        "klog-producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The config line of `name` in `configs describe` output.
fn config_line<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("  {name}=");
    out.lines().find(|l| l.starts_with(&prefix))
}

#[test]
fn configs_alter_describe_and_restart() {
    let mut broker = start_broker();
    admin(
        &broker,
        &["topics", "create", "--topic", "c", "--partitions", "1"],
    );
    let out = admin(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "c",
            "--set",
            "retention.ms=86400000",
            "--append",
            "cleanup.policy=compact",
            "--set",
            "segment.bytes=2097152",
        ],
    );
    assert!(
        out.contains("Completed updating config for topic c."),
        "{out}"
    );
    let out = admin(&broker, &["configs", "describe", "--topic", "c"]);
    assert!(out.starts_with("Dynamic configs for topic c are:"), "{out}");
    let line = config_line(&out, "retention.ms").expect(&out);
    assert_eq!(
        line,
        "  retention.ms=86400000 source=DYNAMIC_TOPIC_CONFIG read-only=false sensitive=false"
    );
    assert!(config_line(&out, "cleanup.policy").is_some_and(|l| l.contains("=delete,compact ")));
    // Without --all, defaults are not shown; with it they are.
    assert!(config_line(&out, "flush.ms").is_none(), "{out}");
    let all = admin(
        &broker,
        &["configs", "describe", "--topic", "c", "--all", "--synonyms"],
    );
    let flush = config_line(&all, "flush.ms").expect(&all);
    assert!(flush.contains("source=DEFAULT_CONFIG"), "{flush}");
    let retention = config_line(&all, "retention.ms").expect(&all);
    assert!(
        retention.contains("synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=86400000, "),
        "{retention}"
    );

    // Delete and subtract; validate-only changes nothing; a bad value fails.
    admin(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "c",
            "--delete",
            "segment.bytes",
            "--subtract",
            "cleanup.policy=delete",
        ],
    );
    let out = admin(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "c",
            "--set",
            "retention.ms=5",
            "--validate-only",
        ],
    );
    assert!(out.contains("nothing changed"), "{out}");
    let (ok, _, err) = admin_status(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "c",
            "--set",
            "retention.ms=soon",
        ],
    );
    assert!(!ok && err.contains("InvalidConfig"), "{err}");
    let (ok, _, err) = admin_status(&broker, &["configs", "alter", "--topic", "c"]);
    assert!(!ok && err.contains("nothing to change"), "{err}");

    broker.restart();
    let out = admin(&broker, &["configs", "describe", "--topic", "c"]);
    assert!(
        config_line(&out, "retention.ms")
            .is_some_and(|l| l.contains("=86400000 source=DYNAMIC_TOPIC_CONFIG")),
        "after restart: {out}"
    );
    assert!(
        config_line(&out, "cleanup.policy").is_some_and(|l| l.contains("=compact ")),
        "after restart: {out}"
    );
    assert!(
        config_line(&out, "segment.bytes").is_none(),
        "after restart: {out}"
    );

    let out = admin(&broker, &["configs", "describe", "--broker", "1", "--all"]);
    assert!(out.starts_with("All configs for broker 1 are:"), "{out}");
    assert!(
        config_line(&out, "listeners")
            .is_some_and(|l| l.contains("source=STATIC_BROKER_CONFIG read-only=true")),
        "{out}"
    );
}

#[test]
fn add_partitions_then_describe() {
    let broker = start_broker();
    admin(
        &broker,
        &["topics", "create", "--topic", "p", "--partitions", "1"],
    );
    let out = admin(
        &broker,
        &[
            "topics",
            "add-partitions",
            "--topic",
            "p",
            "--partitions",
            "4",
            "--validate-only",
        ],
    );
    assert!(out.contains("nothing changed"), "{out}");
    assert!(
        admin(&broker, &["topics", "describe", "--topic", "p"]).contains("PartitionCount: 1\t")
    );
    admin(
        &broker,
        &[
            "topics",
            "add-partitions",
            "--topic",
            "p",
            "--partitions",
            "4",
        ],
    );
    let out = admin(&broker, &["topics", "describe", "--topic", "p"]);
    assert!(out.contains("PartitionCount: 4\t"), "{out}");
    assert!(out.contains("\tPartition: 3\t"), "{out}");
    let (ok, _, err) = admin_status(
        &broker,
        &[
            "topics",
            "add-partitions",
            "--topic",
            "p",
            "--partitions",
            "2",
        ],
    );
    assert!(!ok && err.contains("InvalidPartitions"), "{err}");
}

#[test]
fn delete_records_moves_earliest_offset_and_log_dirs_grow() {
    let broker = start_broker();
    admin(
        &broker,
        &["topics", "create", "--topic", "r", "--partitions", "1"],
    );
    produce(&broker, "r", 10);
    assert_eq!(admin(&broker, &["offsets", "--topic", "r"]), "r:0:10\n");
    assert_eq!(
        admin(&broker, &["offsets", "--topic", "r", "--time", "earliest"]),
        "r:0:0\n"
    );
    // Kafka's GetOffsetShell spellings: -2 earliest, -1 latest.
    assert_eq!(
        admin(&broker, &["offsets", "--topic", "r", "--time", "-2"]),
        "r:0:0\n"
    );
    assert_eq!(
        admin(&broker, &["offsets", "--topic", "r", "--time", "-1"]),
        "r:0:10\n"
    );
    // Timestamps are "now": one far in the future finds nothing.
    assert_eq!(
        admin(
            &broker,
            &["offsets", "--topic", "r", "--time", "99999999999999"]
        ),
        "r:0:-1\n"
    );
    let out = admin(&broker, &["offsets", "--topic", "r", "--time", "0"]);
    assert_eq!(out, "r:0:0\n");

    let out = admin(
        &broker,
        &[
            "records",
            "delete",
            "--topic",
            "r",
            "--partition",
            "0",
            "--offset",
            "4",
        ],
    );
    assert!(out.contains("partition: r-0\tlow_watermark: 4"), "{out}");
    assert_eq!(
        admin(&broker, &["offsets", "--topic", "r", "--time", "earliest"]),
        "r:0:4\n"
    );
    let out = admin(
        &broker,
        &[
            "records",
            "delete",
            "--topic",
            "r",
            "--partition",
            "0",
            "--offset",
            "-1",
        ],
    );
    assert!(out.contains("low_watermark: 10"), "{out}");
    assert_eq!(
        admin(&broker, &["offsets", "--topic", "r", "--time", "earliest"]),
        "r:0:10\n"
    );
    let (ok, _, err) = admin_status(
        &broker,
        &[
            "records",
            "delete",
            "--topic",
            "r",
            "--partition",
            "0",
            "--offset",
            "11",
        ],
    );
    assert!(!ok && err.contains("OffsetOutOfRange"), "{err}");

    admin(
        &broker,
        &["topics", "create", "--topic", "sized", "--partitions", "1"],
    );
    produce(&broker, "sized", 50);
    let out = admin(&broker, &["log-dirs", "describe", "--topic", "sized"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    let dir = broker.dir.path().display().to_string();
    assert_eq!(&rows[0][..4], &["1", dir.as_str(), "sized", "0"], "{out}");
    let size: i64 = rows[0][4].parse().expect("size");
    assert!(size > 50 * 6, "{out}");
}

#[test]
fn cluster_describe_and_group_offsets() {
    let broker = start_broker();
    let out = admin(&broker, &["cluster", "describe"]);
    let mut lines = out.lines();
    let id = lines.next().expect(&out);
    assert!(
        id.starts_with("Cluster ID: ") && id.len() > "Cluster ID: ".len(),
        "{out}"
    );
    assert_eq!(lines.next(), Some("Controller: 1"), "{out}");
    let broker_row: Vec<&str> = lines.nth(1).expect(&out).split_whitespace().collect();
    assert_eq!(
        broker_row,
        vec!["1", "127.0.0.1", &broker.port.to_string(), "-"],
        "{out}"
    );

    // Offsets with metadata, committed through the library as an operator's
    // reset would, then shown by the tool.
    admin(
        &broker,
        &["topics", "create", "--topic", "g", "--partitions", "2"],
    );
    produce(&broker, "g", 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client =
            klog_client::Admin::new(klog_client::ClientConfig::new(&broker.addr())).expect("admin");
        let results = client
            .alter_group_offsets(
                "ops",
                &[klog_client::CommittedOffset {
                    partition: klog_client::TopicPartition::new("g", 1),
                    offset: 2,
                    leader_epoch: None,
                    metadata: Some("batch-42".to_owned()),
                }],
            )
            .await
            .expect("commit");
        results[0].1.clone().expect("committed");
    });
    let out = admin(&broker, &["groups", "offsets", "--group", "ops"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![vec!["ops", "g", "1", "2", "-", "batch-42"]],
        "{out}"
    );
}
