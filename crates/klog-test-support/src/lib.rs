//! Fixtures shared by klog's integration tests (test-only; not published).
//!
//! Tests run the real binaries: [`Broker`] starts `klog-broker` on a free
//! 127.0.0.1 port with a temporary data directory and kills the process it started,
//! by its pid, when dropped; [`run_tool`] runs a command-line tool with a time bound.
//! Binaries are found through [`workspace_binary`]: `$KLOG_*_BIN`, or
//! `<target dir>/debug/<name>` where the target dir is `$CARGO_TARGET_DIR` or the
//! workspace's `target/` (scripts/test builds them before `cargo test`).
//! [`module_graph`] reads a crate's module dependency graph from its sources, for
//! tests that keep modules free of import circles and layered.

pub mod cluster;
pub mod module_graph;
pub mod script;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to start listening, or to stop after SIGTERM.
pub const BROKER_START_STOP_LIMIT: Duration = Duration::from_secs(20);

/// How long [`run_tool`] lets a tool run before killing it.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Where a workspace binary lives: `$<env_var>`, else `<target>/debug/<name>`.
/// Panics with `build_hint` (the command that builds it) if it is missing.
pub fn workspace_binary(env_var: &str, name: &str, build_hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{name} binary not found at {}: run `{build_hint}` first, or set {env_var}",
        path.display()
    );
    path
}

/// The `klog-broker` binary.
pub fn broker_binary() -> PathBuf {
    workspace_binary(
        "KLOG_BROKER_BIN",
        "klog-broker",
        "cargo build -p klog-broker-bin",
    )
}

/// A port nobody listens on now (bound and released: a test claims it next).
///
/// It is drawn from below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), not from it: a port the kernel hands out
/// for `bind(0)` is one it may also give, before our server binds it, to any
/// outgoing connection as its source port, or to a connection to that very
/// port (which then connects to itself while nobody listens). Either makes the
/// server's bind fail with "address in use". Ports below the range are never
/// chosen by the kernel, so only another process that picks the same number
/// can take one; each process starts at its own point (from its pid) and
/// walks on, and every port is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral();
    let span = u32::from(high - low);
    if span >= 1000 {
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let step = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = low + ((start + step) % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The ports `[low, high)` that tests pick from: from 10000 up to where the
/// kernel's ephemeral range starts (Linux's default 32768 when it cannot be
/// read).
fn below_ephemeral() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (10000, first_ephemeral.max(10000))
}

/// A running `klog-broker` process; killed (by pid) on drop.
pub struct Broker {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its data directory (`log.dirs`), removed on drop.
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Broker {
    /// Starts a broker with the default configuration.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a broker with extra `key=value` overrides (each passed as `--set`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        b.spawn();
        b
    }

    /// `127.0.0.1:<port>`, for `--bootstrap-server`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--set")
            .arg(format!("log.dirs={}", self.dir.path().display()));
        for e in &self.extra {
            cmd.arg("--set").arg(e);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn klog-broker");
        self.child = Some(child);
        let deadline = Instant::now() + BROKER_START_STOP_LIMIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM (a clean shutdown) and waits for it to exit;
    /// kills it if it takes longer than [`BROKER_START_STOP_LIMIT`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + BROKER_START_STOP_LIMIT;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops and starts the broker again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill signals this child's pid only, and it is not reaped yet.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `program` with `args`, feeding it `stdin`; kills it if it runs longer than
/// [`TOOL_LIMIT`]. Returns its output whatever its exit status.
pub fn run_tool(program: &PathBuf, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
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
    let deadline = Instant::now() + TOOL_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} ran for more than {TOOL_LIMIT:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// As [`run_tool`], and asserts that the tool succeeded.
pub fn run_tool_ok(program: &PathBuf, args: &[&str], stdin: &[u8]) -> Output {
    let out = run_tool(program, args, stdin);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
