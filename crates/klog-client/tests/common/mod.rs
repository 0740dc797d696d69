//! A real `klog-broker` process per test: a free 127.0.0.1 port, a temporary data
//! directory, and a guard that kills the process it started (by its pid) on drop.
//!
//! The binary is `$KLOG_BROKER_BIN`, or `<target dir>/debug/klog-broker` where the
//! target dir is `$CARGO_TARGET_DIR` or the workspace's `target/`. Build it first
//! with `cargo build -p klog-broker-bin` (scripts/test does).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a workspace binary lives: `$<env_var>`, else `<target>/debug/<name>`.
pub fn workspace_binary(env_var: &str, name: &str, build_hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace dir");
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

pub fn broker_binary() -> PathBuf {
    workspace_binary(
        "KLOG_BROKER_BIN",
        "klog-broker",
        "cargo build -p klog-broker-bin",
    )
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running broker; killed on drop.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Broker {
    /// Starts a broker with extra `--set key=value` overrides.
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

    pub fn start() -> Self {
        Self::start_with(&[])
    }

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
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM (a clean shutdown), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
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
            // Child::kill signals this child's pid only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs an async test body on a multi-threaded runtime with a time bound.
pub fn run<F: std::future::Future<Output = anyhow::Result<()>>>(limit: Duration, f: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .expect("test timed out")
            .expect("test failed");
    });
}
