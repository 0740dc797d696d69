//! The metadata quorum end to end: nodes in this process, on 127.0.0.1 with ports
//! picked by the OS, data in temporary folders. Every wait is on a condition with a
//! deadline (openraft's metrics, the applied and leader watches), never a sleep.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use klog_quorum::{
    MetadataStateMachine, Quorum, QuorumConfig, QuorumError, QuorumRole, VOTE_API, WriteError,
    encode_request, serve,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long any one condition may take to become true.
const DEADLINE: Duration = Duration::from_secs(30);

/// Records every payload with its index; its snapshot is the JSON of that list.
#[derive(Debug, Default)]
struct Recorder {
    applied: Vec<(u64, Vec<u8>)>,
    /// The index of the last snapshot restored, if any.
    restored_at: Option<u64>,
}

impl MetadataStateMachine for Recorder {
    fn apply(&mut self, index: u64, payload: &[u8]) {
        self.applied.push((index, payload.to_vec()));
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.applied).expect("encode")
    }

    fn restore(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String> {
        self.applied = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        self.restored_at = Some(index);
        Ok(())
    }
}

type Q = Quorum<Recorder>;

/// Test timing: fast heartbeats and elections, small snapshots.
fn config(id: u64, dir: &Path, voters: &BTreeMap<u64, String>) -> QuorumConfig {
    let mut c = QuorumConfig::new(id, dir);
    c.voters = voters.clone();
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(600);
    c.election_timeout_max = Duration::from_millis(1200);
    c
}

/// A node and its controller listener.
struct TestNode {
    quorum: Arc<Q>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    /// Starts a quorum node and serves raft RPCs for it on `listener`.
    async fn start(config: QuorumConfig, listener: TcpListener) -> TestNode {
        let addr = listener.local_addr().expect("addr");
        let max = config.max_frame_size;
        let quorum = Arc::new(Q::start(config, Recorder::default()).await.expect("start"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(quorum.rpc()), max, async move {
            let _ = stopped.await;
        }));
        TestNode {
            quorum,
            addr,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops serving and shuts the quorum node down.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
        self.quorum.shutdown().await.expect("shutdown");
    }

    fn payloads(&self) -> Vec<(u64, Vec<u8>)> {
        self.quorum
            .state_machine()
            .lock()
            .expect("lock")
            .applied
            .clone()
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

async fn wait_for<T>(mut rx: watch::Receiver<T>, what: &str, cond: impl FnMut(&T) -> bool) -> T
where
    T: Clone,
{
    match tokio::time::timeout(DEADLINE, rx.wait_for(cond)).await {
        Ok(Ok(v)) => v.clone(),
        Ok(Err(_)) => panic!("{what}: the watch closed"),
        Err(_) => panic!("{what}: not within {DEADLINE:?}; last value seen differs"),
    }
}

async fn wait_applied(q: &Q, index: u64) {
    wait_for(q.applied(), "applied", |a| a.is_some_and(|a| a >= index)).await;
}

/// Waits until every node names the same leader, among `candidates`; returns it.
async fn agreed_leader(nodes: &[&TestNode], candidates: &[u64]) -> u64 {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut watches: Vec<_> = nodes.iter().map(|n| n.quorum.leader_watch()).collect();
    loop {
        // Mark the values seen before checking them, so no change is missed.
        let leaders: Vec<Option<u64>> =
            watches.iter_mut().map(|w| *w.borrow_and_update()).collect();
        if let Some(Some(l)) = leaders.first()
            && candidates.contains(l)
            && leaders.iter().all(|x| *x == Some(*l))
        {
            return *l;
        }
        let mut changes: Vec<_> = watches.iter_mut().map(|w| Box::pin(w.changed())).collect();
        let any_change = std::future::poll_fn(|cx| {
            for c in &mut changes {
                if c.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        });
        if tokio::time::timeout_at(deadline, any_change).await.is_err() {
            panic!("no agreed leader among {candidates:?} within {DEADLINE:?}: {leaders:?}");
        }
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("record-{i}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_quorum_writes_and_replays_everything_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Q::start(config(1, dir.path(), &BTreeMap::new()), Recorder::default())
        .await
        .expect("start");
    wait_for(q.leader_watch(), "leader", |l| *l == Some(1)).await;
    assert!(q.is_leader());
    let mut indexes = Vec::new();
    for i in 0..5 {
        indexes.push(q.write(payload(i)).await.expect("write"));
    }
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    let too_large = vec![0; klog_quorum::MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        q.write(too_large).await,
        Err(WriteError::TooLarge { .. })
    ));
    let before = q.state_machine().lock().expect("lock").applied.clone();
    let expected: Vec<_> = indexes.iter().copied().zip((0..5).map(payload)).collect();
    assert_eq!(before, expected);
    q.shutdown().await.expect("shutdown");
    assert!(matches!(
        q.write(payload(9)).await,
        Err(WriteError::Stopped(_))
    ));
    drop(q);

    // A fresh state machine gets everything back from the log.
    let q = Q::start(config(1, dir.path(), &BTreeMap::new()), Recorder::default())
        .await
        .expect("restart");
    wait_applied(&q, indexes[4]).await;
    assert_eq!(q.state_machine().lock().expect("lock").applied, expected);
    wait_for(q.leader_watch(), "leader", |l| *l == Some(1)).await;
    let next = q.write(payload(5)).await.expect("write after restart");
    assert!(next > indexes[4]);
    q.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_replicate_forward_and_fail_over() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let listeners = vec![bind().await, bind().await, bind().await];
    let voters: BTreeMap<u64, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().expect("addr").to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(TestNode::start(config(i as u64 + 1, dirs[i].path(), &voters), l).await);
    }
    let all: Vec<&TestNode> = nodes.iter().collect();
    let leader = agreed_leader(&all, &[1, 2, 3]).await;
    let li = (leader - 1) as usize;

    // A write on the leader is applied on all three.
    let first = nodes[li].quorum.write(payload(0)).await.expect("write");
    for n in &nodes {
        wait_applied(&n.quorum, first).await;
        assert_eq!(n.payloads(), vec![(first, payload(0))]);
    }
    // A follower refuses and names the leader.
    let fi = (li + 1) % 3;
    assert_eq!(
        nodes[fi].quorum.write(payload(1)).await,
        Err(WriteError::NotLeader {
            leader: Some(leader)
        })
    );
    let d = nodes[li].quorum.describe();
    assert_eq!(d.leader, Some(leader));
    assert_eq!(d.voters.len(), 3);
    assert!(d.learners.is_empty());
    let old_term = d.term;
    // The leader knows every voter's log end once replication reports it.
    nodes[li]
        .quorum
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .is_some_and(|r| r.values().all(|l| l.is_some_and(|l| l.index >= first)))
            },
            "replication reaches every voter",
        )
        .await
        .expect("replication");
    let d = nodes[li].quorum.describe();
    assert!(
        d.voters
            .iter()
            .all(|v| v.last_log_index.is_some_and(|i| i >= first)),
        "{d:?}"
    );

    // The leader goes away; the other two elect one of themselves.
    nodes[li].stop().await;
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let alive: Vec<&TestNode> = nodes
        .iter()
        .filter(|n| n.quorum.node_id() != leader)
        .collect();
    let new_leader = agreed_leader(&alive, &survivors).await;
    let ni = (new_leader - 1) as usize;
    let second = nodes[ni].quorum.write(payload(1)).await.expect("write");
    for n in &alive {
        wait_applied(&n.quorum, second).await;
    }
    assert!(nodes[ni].quorum.describe().term > old_term);
    let expected = nodes[ni].payloads();
    assert_eq!(
        expected.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        vec![payload(0), payload(1)]
    );

    // The old leader restarts from its folder, on its address, and catches up.
    let listener = TcpListener::bind(nodes[li].addr).await.expect("rebind");
    nodes[li] = TestNode::start(config(leader, dirs[li].path(), &voters), listener).await;
    wait_applied(&nodes[li].quorum, second).await;
    assert_eq!(nodes[li].payloads(), expected);
    wait_for(nodes[li].quorum.leader_watch(), "leader known", |l| {
        *l == Some(new_leader)
    })
    .await;
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restore_a_restarted_node_and_bring_a_new_learner_up() {
    let dir1 = tempfile::tempdir().expect("tempdir");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (l1, l2) = (bind().await, bind().await);
    let addr1 = l1.local_addr().expect("addr");
    let voters = BTreeMap::from([(1, addr1.to_string())]);
    let cfg = |dir: &Path| {
        let mut c = config(1, dir, &voters);
        c.snapshot_after_entries = 20;
        c.entries_kept_after_snapshot = 5;
        c
    };
    let mut n1 = TestNode::start(cfg(dir1.path()), l1).await;
    wait_for(n1.quorum.leader_watch(), "leader", |l| *l == Some(1)).await;
    let mut last = 0;
    for i in 0..50 {
        last = n1.quorum.write(payload(i)).await.expect("write");
    }
    // A snapshot was taken past the threshold, and the log purged below it.
    let m = n1
        .quorum
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 30) && m.purged.is_some(),
            "snapshot and purge",
        )
        .await
        .expect("snapshot");
    let snapshot_index = m.snapshot.expect("snapshot").index;
    let meta = dir1.path().join(klog_storage::METADATA_LOG_DIR);
    assert!(checkpoints(&meta).iter().any(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{snapshot_index:020}-")))
    }));
    let expected = n1.payloads();
    assert_eq!(expected.len(), 50);

    // Restart: the snapshot is restored, the log after it replayed.
    n1.stop().await;
    let l1 = TcpListener::bind(addr1).await.expect("rebind");
    let mut n1 = TestNode::start(cfg(dir1.path()), l1).await;
    wait_applied(&n1.quorum, last).await;
    {
        let sm = n1.quorum.state_machine();
        let sm = sm.lock().expect("lock");
        assert!(sm.restored_at.is_some_and(|i| i >= snapshot_index));
        assert_eq!(sm.applied, expected);
    }

    // A new learner: the leader's log no longer starts at 0, so it gets the snapshot.
    let addr2 = l2.local_addr().expect("addr").to_string();
    let mut learner_cfg = config(2, dir2.path(), &voters);
    learner_cfg.role = QuorumRole::Learner;
    let mut n2 = TestNode::start(learner_cfg, l2).await;
    wait_for(n1.quorum.leader_watch(), "leader", |l| *l == Some(1)).await;
    n1.quorum.add_learner(2, addr2).await.expect("add learner");
    wait_applied(&n2.quorum, last).await;
    {
        let sm = n2.quorum.state_machine();
        let sm = sm.lock().expect("lock");
        assert!(sm.restored_at.is_some(), "the learner installed a snapshot");
        assert_eq!(sm.applied, expected);
    }
    let after = n1.quorum.write(payload(50)).await.expect("write");
    wait_applied(&n2.quorum, after).await;
    assert_eq!(n2.payloads().last(), Some(&(after, payload(50))));
    assert_eq!(
        n2.quorum.write(payload(51)).await,
        Err(WriteError::NotLeader { leader: Some(1) })
    );
    let d = n1.quorum.describe();
    assert_eq!(
        d.learners.iter().map(|l| l.node_id).collect::<Vec<_>>(),
        vec![2]
    );
    n2.stop().await;
    n1.stop().await;
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_the_snapshot_does_not_cover_or_a_corrupt_vote_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(1, dir.path(), &BTreeMap::new());
    c.snapshot_after_entries = 10;
    c.entries_kept_after_snapshot = 0;
    let q = Q::start(c.clone(), Recorder::default())
        .await
        .expect("start");
    wait_for(q.leader_watch(), "leader", |l| *l == Some(1)).await;
    for i in 0..30 {
        q.write(payload(i)).await.expect("write");
    }
    q.raft()
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= 10), "purge")
        .await
        .expect("purge");
    q.shutdown().await.expect("shutdown");
    drop(q);

    let meta = dir.path().join(klog_storage::METADATA_LOG_DIR);
    for p in checkpoints(&meta) {
        std::fs::remove_file(p).expect("remove snapshot");
    }
    match Q::start(c.clone(), Recorder::default()).await {
        Err(QuorumError::MissingEntries {
            covered_below: 0,
            snapshot: None,
            ..
        }) => {}
        other => panic!("expected MissingEntries, got {other:?}"),
    }

    std::fs::write(meta.join(klog_quorum::STATE_FILE), b"not json").expect("write");
    match Q::start(c, Recorder::default()).await {
        Err(QuorumError::Corrupt { path, .. }) => {
            assert_eq!(path, meta.join(klog_quorum::STATE_FILE));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Whether the server closed the connection: a read sees the end of the stream
/// (or a reset) instead of a response.
fn closed_by_peer(stream: &mut std::net::TcpStream) -> bool {
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let voters = BTreeMap::from([(1, addr.to_string())]);
    let mut node = TestNode::start(config(1, dir.path(), &voters), listener).await;
    wait_for(node.quorum.leader_watch(), "leader", |l| *l == Some(1)).await;

    let bad_frames: Vec<Vec<u8>> = vec![
        // Negative size.
        (-1i32).to_be_bytes().to_vec(),
        // Larger than the frame limit: refused before any allocation.
        i32::MAX.to_be_bytes().to_vec(),
        // A vote whose body is not JSON.
        encode_request(VOTE_API, 1, None, b"\xff garbage"),
        // A header cut short.
        [
            8i32.to_be_bytes().as_slice(),
            &[0x7d, 0x02, 0, 0, 0, 0, 0, 1],
        ]
        .concat(),
        // An API key the quorum does not serve.
        encode_request(12345, 2, Some("probe"), b"{}"),
    ];
    for frame in bad_frames {
        let closed = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(&frame).expect("send");
            closed_by_peer(&mut s)
        })
        .await
        .expect("join");
        assert!(closed, "the connection stays open after a bad frame");
    }

    // The node still answers a well-formed vote request on a new connection.
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(0, 9), None);
    let request = encode_request(
        VOTE_API,
        77,
        Some("probe"),
        &serde_json::to_vec(&vote).expect("json"),
    );
    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        s.write_all(&request).expect("send");
        let mut size = [0u8; 4];
        s.read_exact(&mut size).expect("size");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).expect("body");
        body
    })
    .await
    .expect("join");
    assert_eq!(response[..4], 77i32.to_be_bytes());
    let parsed: Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>> =
        serde_json::from_slice(&response[4..]).expect("vote response");
    let vote_response = parsed.expect("answered");
    assert!(
        !vote_response.vote_granted,
        "a stale candidate gets no vote"
    );
    let index = node.quorum.write(payload(0)).await.expect("still writes");
    wait_applied(&node.quorum, index).await;
    node.stop().await;
}
