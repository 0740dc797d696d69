//! `klog-consumer --group` and `klog-admin groups` end to end against the real
//! broker binary: a group consumes every line once, its committed offsets show as
//! CURRENT-OFFSET / LOG-END-OFFSET / LAG in `klog-admin groups describe`, and a
//! second run of the group resumes where the first stopped.
//!
//! Binaries as in `cli.rs`: `$KLOG_BROKER_BIN`, `$KLOG_PRODUCER_BIN`,
//! `$KLOG_ADMIN_BIN`, or `<target dir>/debug/`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn binary(env_var: &str, name: &str, package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{name} not found at {}: run `cargo build -p {package}` first, or set {env_var}",
        path.display()
    );
    path
}

struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(binary("KLOG_BROKER_BIN", "klog-broker", "klog-broker-bin"))
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--set")
            .arg(format!("log.dirs={}", dir.path().display()))
            .arg("--set")
            .arg("group.initial.rebalance.delay.ms=0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Kills the process this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a tool with `stdin`, killing it if it runs longer than 60 s.
fn run(program: PathBuf, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} ran for more than 60 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    };
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
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
    let broker = Broker::start();
    let b = broker.addr.as_str();
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
