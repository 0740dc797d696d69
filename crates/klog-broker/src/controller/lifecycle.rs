//! The broker's lifecycle with the controller (Kafka's `BrokerLifecycleManager`):
//! register at start, heartbeat every `broker.heartbeat.interval.ms`, become
//! unfenced once caught up with the metadata log, and on SIGTERM ask for a
//! controlled shutdown and wait until the controller has moved this broker's
//! leaderships away.
//!
//! A heartbeat answered STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED (the
//! controller fenced and forgot this incarnation) registers again. The epoch this
//! broker had at a clean stop is kept in `<first log dir>/klog-broker-epoch`
//! (written at a clean stop, removed at start), so that the next registration can
//! say it stopped cleanly (KIP-966: only then does it stay an eligible leader).
//!
//! KIP-966 counts every other stop as a possible loss of unsynced writes, which
//! a `kill -9` is not: the kernel keeps the page cache of a killed process, and
//! only a reboot (a power loss, a kernel crash) drops it. So the broker also
//! keeps `<first log dir>/klog-broker-run`, the kernel's boot id and its epoch,
//! written at each registration; a broker that finds no clean-stop epoch but the
//! boot id it ran under registers with that epoch, as after a clean stop. After a
//! reboot (another boot id) it registers with -1 and the controller takes it out
//! of every ELR, and out of the last-known-leader fallback where an ELR member
//! holds the committed records.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use klog_codec::protocol::ResponseError;
use klog_coordinator::metadata::{Endpoint, Heartbeat, HeartbeatReply, RegisterBroker};
use tokio::sync::watch;

use crate::controller::client::ControllerClient;
use crate::controller::runtime::Refusal;
use crate::metadata::store::MetadataStore;

/// What one exchange with the controller brought back: a registration's broker
/// epoch or a heartbeat's answer.
enum Step {
    Registered(i64),
    Heartbeat(HeartbeatReply),
}

/// The file holding the broker epoch of the last clean stop.
pub const EPOCH_FILE: &str = "klog-broker-epoch";

/// The file holding the boot id and broker epoch of the current run.
pub const RUN_FILE: &str = "klog-broker-run";

/// The id of the current boot, read from `file` (None: unknown).
pub fn boot_id(file: Option<&Path>) -> Option<String> {
    let id = std::fs::read_to_string(file?).ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_owned())
}

/// The epoch the next registration reports as its previous one: the clean-stop
/// epoch if the last stop was clean (the file is removed), else the epoch of the
/// last run if it ran under the boot `boot` (a process that died without a
/// reboot lost nothing the kernel had), else -1.
pub fn previous_epoch(dir: &Path, boot: Option<&str>) -> i64 {
    let clean = take_clean_epoch(dir);
    if clean >= 0 {
        return clean;
    }
    let Some(boot) = boot else {
        return -1;
    };
    let run = std::fs::read_to_string(dir.join(RUN_FILE)).unwrap_or_default();
    let mut fields = run.split_whitespace();
    match (fields.next(), fields.next().and_then(|e| e.parse().ok())) {
        (Some(b), Some(epoch)) if b == boot => {
            tracing::info!(
                epoch,
                "no clean stop, but the same boot: the page cache kept every write"
            );
            epoch
        }
        _ => -1,
    }
}

/// Where the broker stands with the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleState {
    /// The broker epoch of the current registration (-1: not registered).
    pub epoch: i64,
    /// Fenced: must not serve (not caught up, or not registered).
    pub fenced: bool,
    /// The controller said this broker may stop (controlled shutdown done).
    pub may_stop: bool,
}

/// What a broker registers as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerIdentity {
    /// `node.id`.
    pub node_id: i32,
    /// This run's random id.
    pub incarnation: String,
    /// Its listeners, as clients and brokers reach them.
    pub endpoints: Vec<Endpoint>,
    /// The epoch of its last clean stop, or of its last run in this boot (-1:
    /// none).
    pub previous_epoch: i64,
    /// The id of the current boot, if known.
    pub boot_id: Option<String>,
}

/// Registration and heartbeats.
#[derive(Debug)]
pub struct Lifecycle {
    node_id: i32,
    incarnation: String,
    endpoints: Vec<Endpoint>,
    heartbeat_interval: Duration,
    client: Arc<ControllerClient>,
    store: Arc<MetadataStore>,
    previous_epoch: AtomicI64,
    state: watch::Sender<LifecycleState>,
    shut_down: watch::Sender<bool>,
    epoch_file: PathBuf,
    run_file: PathBuf,
    boot_id: Option<String>,
}

/// Reads and removes the epoch of the last clean stop (-1: none).
pub fn take_clean_epoch(dir: &Path) -> i64 {
    let path = dir.join(EPOCH_FILE);
    let epoch = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the clean-stop epoch");
    }
    epoch
}

impl Lifecycle {
    /// A lifecycle for the broker `who` describes, heartbeating every
    /// `heartbeat_interval`, keeping its clean-stop epoch in `first_log_dir`.
    pub fn new(
        who: BrokerIdentity,
        heartbeat_interval: Duration,
        client: Arc<ControllerClient>,
        store: Arc<MetadataStore>,
        first_log_dir: &Path,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id: who.node_id,
            incarnation: who.incarnation,
            endpoints: who.endpoints,
            heartbeat_interval,
            client,
            store,
            previous_epoch: AtomicI64::new(who.previous_epoch),
            state: watch::Sender::new(LifecycleState {
                epoch: -1,
                fenced: true,
                may_stop: false,
            }),
            shut_down: watch::Sender::new(false),
            epoch_file: first_log_dir.join(EPOCH_FILE),
            run_file: first_log_dir.join(RUN_FILE),
            boot_id: who.boot_id,
        })
    }

    /// Watches the state.
    pub fn state(&self) -> watch::Receiver<LifecycleState> {
        self.state.subscribe()
    }

    /// The current broker epoch (-1 before registration).
    pub fn epoch(&self) -> i64 {
        self.state.borrow().epoch
    }

    /// Asks the controller for a controlled shutdown from the next heartbeat on.
    pub fn begin_shutdown(&self) {
        self.shut_down.send_replace(true);
    }

    /// Records the current epoch as a clean stop's (after logs are flushed).
    pub fn record_clean_stop(&self) {
        let epoch = self.epoch();
        if epoch < 0 {
            return;
        }
        if let Err(e) = std::fs::write(&self.epoch_file, epoch.to_string()) {
            tracing::warn!(path = %self.epoch_file.display(), error = %e, "could not record the clean-stop epoch");
        }
    }

    /// Records this run's boot id and epoch, for a restart in the same boot.
    fn record_run(&self, epoch: i64) {
        let Some(boot) = &self.boot_id else {
            return;
        };
        if let Err(e) = std::fs::write(&self.run_file, format!("{boot} {epoch}\n")) {
            tracing::warn!(path = %self.run_file.display(), error = %e, "could not record the run's boot id");
        }
    }

    /// Runs until `stop`: registers, then heartbeats.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut shut_down = self.shut_down.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let epoch = self.epoch();
            let exchange = async {
                if epoch < 0 {
                    let request = RegisterBroker {
                        id: self.node_id,
                        incarnation: self.incarnation.clone(),
                        endpoints: self.endpoints.clone(),
                        rack: None,
                        previous_epoch: self.previous_epoch.load(Ordering::SeqCst),
                    };
                    let reply = self.client.register(request).await;
                    reply.map(|r| r.map(Step::Registered))
                } else {
                    let request = Heartbeat {
                        id: self.node_id,
                        epoch,
                        metadata_offset: self.store.offset(),
                        want_fence: false,
                        want_shut_down: *shut_down.borrow(),
                    };
                    let reply = self.client.heartbeat(request).await;
                    reply.map(|r| r.map(Step::Heartbeat))
                }
            };
            let answer = tokio::select! {
                a = exchange => a,
                _ = stop.changed() => return,
            };
            let mut next = self.heartbeat_interval;
            match answer {
                Ok(Ok(Step::Registered(epoch))) => {
                    tracing::info!(node = self.node_id, epoch, "registered with the controller");
                    self.state.send_modify(|s| s.epoch = epoch);
                    self.record_run(epoch);
                    // Heartbeat at once: the first one unfences.
                    next = Duration::from_millis(10);
                }
                Ok(Ok(Step::Heartbeat(r))) => {
                    let before = *self.state.borrow();
                    if before.fenced && !r.is_fenced {
                        tracing::info!(node = self.node_id, epoch, "unfenced");
                    } else if !before.fenced && r.is_fenced {
                        tracing::warn!(node = self.node_id, epoch, "fenced by the controller");
                    }
                    self.state.send_modify(|s| {
                        s.fenced = r.is_fenced;
                        s.may_stop = r.should_shut_down;
                    });
                    if r.is_fenced && !r.is_caught_up {
                        // Catching up: ask again soon.
                        next = next.min(Duration::from_millis(50));
                    }
                    if *shut_down.borrow() && !r.should_shut_down {
                        next = next.min(Duration::from_millis(100));
                    }
                }
                Ok(Err(Refusal { code, .. }))
                    if code == ResponseError::StaleBrokerEpoch.code()
                        || code == ResponseError::BrokerIdNotRegistered.code() =>
                {
                    tracing::warn!(
                        node = self.node_id,
                        epoch,
                        "the controller does not know this registration; registering again"
                    );
                    // This process kept its logs: it registers as after a
                    // clean stop of the epoch it had.
                    self.previous_epoch.store(epoch, Ordering::SeqCst);
                    self.state.send_modify(|s| {
                        s.epoch = -1;
                        s.fenced = true;
                    });
                    next = Duration::from_millis(10);
                }
                Ok(Err(Refusal { code, message })) => {
                    tracing::warn!(node = self.node_id, code, message, "the controller refused");
                    next = Duration::from_millis(500);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no controller answered");
                    next = Duration::from_millis(200);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                _ = shut_down.changed() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_epoch_tells_a_killed_process_from_a_reboot() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path();
        // Nothing recorded: a first start, or a stop that left nothing.
        assert_eq!(previous_epoch(d, Some("boot-a")), -1);
        // A run registered at epoch 7 in boot a, then died (kill -9).
        std::fs::write(d.join(RUN_FILE), "boot-a 7\n").expect("write");
        assert_eq!(previous_epoch(d, Some("boot-a")), 7);
        // The machine rebooted: the page cache may have lost its writes.
        assert_eq!(previous_epoch(d, Some("boot-b")), -1);
        // No boot id known: every unclean stop counts as a loss.
        assert_eq!(previous_epoch(d, None), -1);
        // A clean stop wins, whatever the boot, and is taken once.
        std::fs::write(d.join(EPOCH_FILE), "9").expect("write");
        assert_eq!(previous_epoch(d, Some("boot-b")), 9);
        assert!(!d.join(EPOCH_FILE).exists());
        assert_eq!(previous_epoch(d, Some("boot-b")), -1);
    }

    #[test]
    fn the_boot_id_is_one_word_or_none() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let f = dir.path().join("boot_id");
        assert_eq!(boot_id(Some(&f)), None);
        std::fs::write(&f, "1c0a7f9e-0d3c-4f1e-9a51-6f7a2e1b9c44\n").expect("write");
        assert_eq!(
            boot_id(Some(&f)).as_deref(),
            Some("1c0a7f9e-0d3c-4f1e-9a51-6f7a2e1b9c44")
        );
        std::fs::write(&f, "\n").expect("write");
        assert_eq!(boot_id(Some(&f)), None);
        assert_eq!(boot_id(None), None);
        if Path::new(crate::config::BOOT_ID_FILE).exists() {
            assert!(boot_id(Some(Path::new(crate::config::BOOT_ID_FILE))).is_some());
        }
    }
}
