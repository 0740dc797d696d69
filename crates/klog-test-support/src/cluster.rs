//! A cluster of real `klog-broker` processes on 127.0.0.1: combined
//! broker+controller nodes, every one a voter of the metadata quorum, each with
//! its own free ports and temporary data dir.
//!
//! Processes are started, stopped (SIGTERM), crashed (SIGKILL), paused (SIGSTOP)
//! and resumed (SIGCONT) by their pid only, and killed on drop. Each node's
//! stderr goes to `broker.log` beside its data dir, and [`Cluster::logs`] prints
//! them all (call it when a test fails).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BROKER_START_STOP_LIMIT, broker_binary, free_port};

/// One node of a [`Cluster`].
pub struct ClusterNode {
    /// `node.id`.
    pub id: i32,
    /// Its client (PLAINTEXT) port.
    pub port: u16,
    /// Its controller listener port.
    pub controller_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
}

impl ClusterNode {
    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log");
        let child = Command::new(broker_binary())
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn klog-broker");
        self.child = Some(child);
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status();
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running cluster; every process is killed (by pid) on drop.
pub struct Cluster {
    /// The nodes, `node.id` 1 first.
    pub nodes: Vec<ClusterNode>,
}

impl Cluster {
    /// Starts `n` combined nodes (ids 1..=n, all voters) with extra `key=value`
    /// settings, and waits until every one serves clients (it is registered and
    /// unfenced).
    pub fn start(n: usize, extra: &[&str]) -> Self {
        Self::start_mixed(n, 0, extra)
    }

    /// Starts `controllers` combined nodes (ids 1..=controllers, the voters) and
    /// `brokers` broker-only nodes after them (`process.roles=broker`, receiving
    /// the metadata log as learners), and waits until every one serves.
    pub fn start_mixed(controllers: usize, brokers: usize, extra: &[&str]) -> Self {
        let n = controllers + brokers;
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters: Vec<String> = ports
            .iter()
            .take(controllers)
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let voters = voters.join(",");
        let mut nodes: Vec<ClusterNode> = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, controller_port))| {
                let id = i as i32 + 1;
                let dir = tempfile::tempdir().expect("tempdir");
                let mut settings = vec![
                    format!("node.id={id}"),
                    format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
                    format!("controller.quorum.voters={voters}"),
                    format!("log.dirs={}", dir.path().join("data").display()),
                ];
                if i >= controllers {
                    settings.push("process.roles=broker".to_owned());
                }
                settings.extend(extra.iter().map(|s| s.to_string()));
                let args = settings.iter().flat_map(|s| ["--set".to_owned(), s.clone()]).collect();
                ClusterNode {
                    id,
                    port,
                    controller_port,
                    dir,
                    child: None,
                    args,
                }
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        let cluster = Self { nodes };
        for id in 1..=n as i32 {
            cluster.wait_serving(id);
        }
        cluster
    }

    /// The node with `node.id` `id`.
    pub fn node(&self, id: i32) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    fn node_mut(&mut self, id: i32) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// Every node's address, comma-separated (`bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits (at most [`BROKER_START_STOP_LIMIT`] and then some for the quorum)
    /// until node `id` accepts client connections; panics with the logs if not.
    pub fn wait_serving(&self, id: i32) {
        let node = self.node(id);
        let deadline = Instant::now() + BROKER_START_STOP_LIMIT * 3;
        while TcpStream::connect(("127.0.0.1", node.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {id} did not start serving\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Crashes node `id` (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self, id: i32) {
        let n = self.node_mut(id);
        if let Some(mut child) = n.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `id` cleanly (SIGTERM: controlled shutdown) and waits for it to
    /// exit; SIGKILL past [`BROKER_START_STOP_LIMIT`].
    pub fn stop(&mut self, id: i32) {
        let n = self.node_mut(id);
        n.signal("TERM");
        if !n.wait_exit(BROKER_START_STOP_LIMIT)
            && let Some(mut child) = n.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `id` again (same ports and data) and waits until it serves.
    pub fn restart(&mut self, id: i32) {
        self.node_mut(id).spawn();
        self.wait_serving(id);
    }

    /// Pauses node `id` (SIGSTOP), as a long GC pause would.
    pub fn pause(&self, id: i32) {
        self.node(id).signal("STOP");
    }

    /// Resumes a paused node (SIGCONT).
    pub fn resume(&self, id: i32) {
        self.node(id).signal("CONT");
    }

    /// Every node's log, for a failing test's output.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(n.log_path()).unwrap_or_default();
            out.push_str(&format!("===== node {} =====\n{text}\n", n.id));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            // SIGKILL ends a paused (SIGSTOPped) process too; the wait reaps it.
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
