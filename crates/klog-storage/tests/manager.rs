//! LogManager: partition folders over several log directories, checkpoints, the
//! clean-shutdown marker, create and delete.

mod support;

use std::fs;
use std::path::PathBuf;

use klog_storage::{AppendError, LogConfig, LogManager, MetaProperties, OpenError, TopicPartition};
use support::batch;

fn dirs(root: &std::path::Path) -> Vec<PathBuf> {
    vec![root.join("d0"), root.join("d1")]
}

fn cfg(_: &TopicPartition) -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        ..LogConfig::default()
    }
}

#[test]
fn log_manager_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LogManager>();
}

#[test]
fn partitions_are_folders_spread_over_log_dirs() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let m = LogManager::open(&dirs, cfg, 0).expect("open");
    // The seed's example: topic1 with 5 partitions and topic2 with 10 make 15 folders.
    for p in 0..5 {
        m.create(
            TopicPartition::new("topic1", p),
            cfg(&TopicPartition::new("", 0)),
            0,
        )
        .expect("create");
    }
    for p in 0..10 {
        m.create(TopicPartition::new("topic-2", p), LogConfig::default(), 0)
            .expect("create");
    }
    assert_eq!(m.partitions().len(), 15);
    let count = |d: &PathBuf| {
        fs::read_dir(d)
            .expect("read_dir")
            .filter(|e| e.as_ref().expect("entry").path().is_dir())
            .count()
    };
    assert_eq!(count(&dirs[0]) + count(&dirs[1]), 15);
    assert!(count(&dirs[0]).abs_diff(count(&dirs[1])) <= 1, "balanced");
    assert!(dirs.iter().any(|d| {
        d.join("topic-2-9")
            .join("00000000000000000000.log")
            .exists()
    }));
    assert!(matches!(
        m.create(TopicPartition::new("topic1", 0), LogConfig::default(), 0),
        Err(OpenError::AlreadyExists(_))
    ));
    assert!(matches!(
        m.create(TopicPartition::new("bad topic", 0), LogConfig::default(), 0),
        Err(OpenError::InvalidTopicPartition(_))
    ));
    // Both directories carry the same identity.
    let meta0 = fs::read_to_string(dirs[0].join("meta.properties")).expect("meta");
    let meta1 = fs::read_to_string(dirs[1].join("meta.properties")).expect("meta");
    assert_eq!(meta0, meta1);
    assert!(meta0.contains(&format!("cluster.id={}", m.meta().cluster_id)));
    assert!(meta0.contains("node.id=0"));
}

#[test]
fn clean_shutdown_restores_offsets_without_recovery() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let tp = TopicPartition::new("orders", 3);
    {
        let m = LogManager::open_with_node_id(&dirs, 7, cfg, 0).expect("open");
        let log = m.create(tp.clone(), cfg(&tp), 0).expect("create");
        let mut log = log.lock().expect("lock");
        for i in 0..20 {
            log.append(&mut batch(2, 80, i), 1, 0).expect("append");
        }
        log.set_high_watermark(30);
        log.delete_records_before(17).expect("delete records");
        drop(log);
        m.shutdown().expect("shutdown");
        for d in &dirs {
            assert!(d.join(".clean-shutdown").exists());
        }
        let dir = dirs
            .iter()
            .find(|d| d.join("orders-3").exists())
            .expect("folder");
        assert_eq!(
            fs::read_to_string(dir.join("replication-offset-checkpoint")).expect("hw"),
            "0\n1\norders 3 30\n"
        );
        assert_eq!(
            fs::read_to_string(dir.join("recovery-point-offset-checkpoint")).expect("rp"),
            "0\n1\norders 3 40\n"
        );
        assert_eq!(
            fs::read_to_string(dir.join("log-start-offset-checkpoint")).expect("ls"),
            "0\n1\norders 3 17\n"
        );
        // A closed log refuses appends.
        let err = m
            .get(&tp)
            .expect("log")
            .lock()
            .expect("lock")
            .append(&mut batch(1, 1, 0), 1, 0);
        assert!(matches!(err, Err(AppendError::Closed)));
    }
    let m = LogManager::open_with_node_id(&dirs, 7, cfg, 0).expect("reopen");
    for d in &dirs {
        assert!(
            !d.join(".clean-shutdown").exists(),
            "marker removed at open"
        );
    }
    let log = m.get(&tp).expect("log");
    let log = log.lock().expect("lock");
    assert!(
        log.recovery_report().is_none(),
        "no recovery after a clean stop"
    );
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.high_watermark(), 30);
    assert_eq!(log.log_start_offset(), 17);
    assert_eq!(log.latest_epoch(), Some(1));
    drop(log);
    assert!(matches!(
        LogManager::open_with_node_id(&dirs, 8, cfg, 0),
        Err(OpenError::InconsistentMeta {
            field: "node.id",
            ..
        })
    ));
}

#[test]
fn unclean_stop_recovers_from_the_checkpointed_recovery_point() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("only")];
    let tp = TopicPartition::new("t", 0);
    {
        let m = LogManager::open(&dirs, cfg, 0).expect("open");
        let log = m.create(tp.clone(), cfg(&tp), 0).expect("create");
        let mut log = log.lock().expect("lock");
        for i in 0..20 {
            log.append(&mut batch(1, 100, i), 0, 0).expect("append");
        }
        log.flush().expect("flush");
        for i in 0..5 {
            log.append(&mut batch(1, 100, i), 0, 0).expect("append");
        }
        drop(log);
        m.checkpoint().expect("checkpoint");
        // Crash: no shutdown.
    }
    let m = LogManager::open(&dirs, cfg, 0).expect("reopen");
    let log = m.get(&tp).expect("log");
    let log = log.lock().expect("lock");
    let report = log.recovery_report().expect("recovery ran");
    let first_checked = *report.segments_checked.first().expect("checked");
    assert!(
        first_checked > 0,
        "segments below the recovery point are trusted"
    );
    assert!(first_checked <= 20);
    assert!(report.cut.is_none());
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.recovery_point(), 25);
    drop(log);
    // The open wrote the new recovery point at once.
    assert_eq!(
        fs::read_to_string(dirs[0].join("recovery-point-offset-checkpoint")).expect("rp"),
        "0\n1\nt 0 25\n"
    );
}

#[test]
fn delete_removes_the_folder_and_closes_the_log() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let m = LogManager::open(&dirs, cfg, 0).expect("open");
    let a = TopicPartition::new("a", 0);
    let b = TopicPartition::new("b", 0);
    let log_a = m.create(a.clone(), cfg(&a), 0).expect("create");
    m.create(b.clone(), cfg(&b), 0).expect("create");
    log_a
        .lock()
        .expect("lock")
        .append(&mut batch(1, 10, 0), 0, 0)
        .expect("append");
    m.delete(&a).expect("delete");
    assert!(m.get(&a).is_none());
    assert_eq!(m.partitions(), vec![b.clone()]);
    assert!(dirs.iter().all(|d| !d.join("a-0").exists()));
    let err = log_a
        .lock()
        .expect("lock")
        .append(&mut batch(1, 1, 0), 0, 0);
    assert!(matches!(err, Err(AppendError::Closed)));
    assert!(m.delete(&a).is_err());
    m.checkpoint().expect("checkpoint");
    let all: String = dirs
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("recovery-point-offset-checkpoint")).ok())
        .collect();
    assert!(!all.contains("a 0"), "{all}");
    // The name can be used again.
    m.create(a.clone(), cfg(&a), 0).expect("create again");
}

#[test]
fn detached_partitions_are_gone_at_once_and_removed_later_or_at_the_next_open() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("d")];
    let m = LogManager::open(&dirs, cfg, 0).expect("open");
    let a = TopicPartition::new("a", 0);
    let b = TopicPartition::new("b", 0);
    for tp in [&a, &b] {
        let log = m.create(tp.clone(), cfg(tp), 0).expect("create");
        log.lock()
            .expect("lock")
            .append(&mut batch(1, 10, 0), 0, 0)
            .expect("append");
    }
    let detached_a = m.detach(&a).expect("detach");
    let detached_b = m.detach(&b).expect("detach");
    // Out of service at once: the name is free, the files are renamed.
    assert!(m.get(&a).is_none() && m.partitions().is_empty());
    assert!(!dirs[0].join("a-0").exists());
    assert!(detached_a.path().join("00000000000000000000.log").exists());
    let fresh = m.create(a.clone(), cfg(&a), 0).expect("create again");
    assert_eq!(fresh.lock().expect("lock").log_end_offset(), 0);
    // remove() deletes the folder; a folder never removed goes at the next open.
    let a_path = detached_a.path().to_path_buf();
    detached_a.remove().expect("remove");
    assert!(!a_path.exists());
    let b_path = detached_b.path().to_path_buf();
    drop(detached_b);
    assert!(b_path.exists());
    drop(fresh);
    drop(m);
    let m = LogManager::open(&dirs, cfg, 0).expect("reopen");
    assert!(!b_path.exists());
    assert_eq!(m.partitions(), vec![a]);
}

#[test]
fn open_skips_strangers_and_finishes_interrupted_deletes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("d")];
    fs::create_dir_all(dirs[0].join("not a partition")).expect("mkdir");
    fs::create_dir_all(dirs[0].join("x-0.123-delete")).expect("mkdir");
    fs::write(
        dirs[0]
            .join("x-0.123-delete")
            .join("00000000000000000000.log"),
        b"junk",
    )
    .expect("write");
    fs::create_dir_all(dirs[0].join("y-2")).expect("mkdir");
    let m = LogManager::open(&dirs, cfg, 0).expect("open");
    assert_eq!(m.partitions(), vec![TopicPartition::new("y", 2)]);
    assert!(!dirs[0].join("x-0.123-delete").exists());
    assert!(dirs[0].join("not a partition").exists());
}

#[test]
fn open_leaves_the_metadata_log_folder_to_the_quorum() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = vec![root.path().join("d")];
    let meta = dirs[0].join(klog_storage::METADATA_LOG_DIR);
    fs::create_dir_all(&meta).expect("mkdir");
    fs::write(meta.join("quorum-state"), b"{}").expect("write");
    let m = LogManager::open(&dirs, cfg, 0).expect("open");
    assert!(m.partitions().is_empty());
    // Not opened as a partition: no segment was created in it.
    assert!(!meta.join("00000000000000000000.log").exists());
}

#[test]
fn timed_flush_and_retention_run_over_every_log() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let config = |_: &TopicPartition| LogConfig {
        segment_bytes: 500,
        flush_interval_ms: Some(100),
        retention_ms: Some(1000),
        ..LogConfig::default()
    };
    let m = LogManager::open(&dirs, config, 0).expect("open");
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("r", p)).collect();
    for tp in &tps {
        let log = m.create(tp.clone(), config(tp), 0).expect("create");
        let mut log = log.lock().expect("lock");
        for i in 0..10 {
            log.append(&mut batch(1, 150, i * 10), 0, 0)
                .expect("append");
        }
    }
    assert!(m.flush_due(50).is_empty());
    assert_eq!(
        m.get(&tps[0])
            .expect("log")
            .lock()
            .expect("lock")
            .recovery_point(),
        0
    );
    assert!(m.flush_due(100).is_empty());
    for tp in &tps {
        assert_eq!(
            m.get(tp)
                .expect("log")
                .lock()
                .expect("lock")
                .recovery_point(),
            10
        );
    }
    assert_eq!(m.run_retention(500), 0);
    let deleted = m.run_retention(10_000);
    assert!(deleted >= 3, "{deleted}");
    for tp in &tps {
        let log = m.get(tp).expect("log");
        let log = log.lock().expect("lock");
        assert_eq!(log.segments().len(), 1);
        assert_eq!(log.log_start_offset(), log.segments()[0].base_offset);
    }
}

fn meta_text(dir: &std::path::Path) -> String {
    fs::read_to_string(dir.join("meta.properties")).expect("meta.properties")
}

#[test]
fn a_claimed_log_dir_refuses_another_node_or_cluster() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let node2 = MetaProperties::new(2, "klog-0a1b2c3d");
    let m = LogManager::open_with_identity(&dirs, &node2, cfg, 0).expect("open");
    assert_eq!(m.meta(), &node2);
    m.shutdown().expect("shutdown");
    for d in &dirs {
        let text = meta_text(d);
        assert!(text.contains("node.id=2\n"), "{text}");
        assert!(text.contains("cluster.id=klog-0a1b2c3d\n"), "{text}");
    }
    // Kafka refuses a log dir whose meta.properties names another node or cluster
    // (MetaPropertiesEnsemble.verify), and so does klog, before opening any log.
    let other_node = MetaProperties::new(3, "klog-0a1b2c3d");
    let err = LogManager::open_with_identity(&dirs, &other_node, cfg, 0).expect_err("node 3");
    let OpenError::ForeignLogDir {
        path,
        field,
        expected,
        found,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(path, &dirs[0].join("meta.properties"));
    assert_eq!(
        (*field, expected.as_str(), found.as_str()),
        ("node.id", "3", "2")
    );
    let text = err.to_string();
    assert!(text.contains("meta.properties: node.id is 2, but this node's node.id is 3"));
    let other_cluster = MetaProperties::new(2, "klog-ffffffff");
    assert!(matches!(
        LogManager::claim(&dirs, &other_cluster),
        Err(OpenError::ForeignLogDir {
            field: "cluster.id",
            ref expected,
            ref found,
            ..
        }) if expected == "klog-ffffffff" && found == "klog-0a1b2c3d"
    ));
    // Nothing was rewritten by the refusals.
    for d in &dirs {
        assert!(meta_text(d).contains("node.id=2\ncluster.id=klog-0a1b2c3d\n"));
    }
    LogManager::open_with_identity(&dirs, &node2, cfg, 0).expect("reopen as node 2");
}

#[test]
fn a_log_dir_written_without_an_identity_is_claimed_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    let tp = TopicPartition::new("old", 0);
    // What every broker wrote before identities were checked: node.id=0 and a
    // generated cluster id, whatever the node's id.
    {
        let m = LogManager::open(&dirs, cfg, 0).expect("open");
        assert!(m.meta().is_unclaimed());
        let log = m.create(tp.clone(), cfg(&tp), 0).expect("create");
        log.lock()
            .expect("lock")
            .append(&mut batch(1, 10, 0), 0, 0)
            .expect("append");
        m.shutdown().expect("shutdown");
    }
    let node5 = MetaProperties::new(5, "klog-5");
    let m = LogManager::open_with_identity(&dirs, &node5, cfg, 0).expect("claimed");
    assert_eq!(m.meta(), &node5);
    assert_eq!(
        m.get(&tp)
            .expect("log kept")
            .lock()
            .expect("lock")
            .log_end_offset(),
        1
    );
    m.shutdown().expect("shutdown");
    for d in &dirs {
        assert_eq!(
            meta_text(d),
            "#klog log directory identity\nversion=1\nnode.id=5\ncluster.id=klog-5\n"
        );
    }
    // Claimed: from now on it is node 5's.
    assert!(matches!(
        LogManager::claim(&dirs, &MetaProperties::new(6, "klog-6")),
        Err(OpenError::ForeignLogDir {
            field: "node.id",
            ..
        })
    ));
}

#[test]
fn unclaimed_log_dirs_of_two_old_nodes_are_not_claimed_together() {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = dirs(root.path());
    // Each opened alone, so each has a cluster id of its own.
    for d in &dirs {
        LogManager::open(std::slice::from_ref(d), cfg, 0).expect("open");
    }
    let before: Vec<String> = dirs.iter().map(|d| meta_text(d)).collect();
    assert!(matches!(
        LogManager::claim(&dirs, &MetaProperties::new(1, "klog-1")),
        Err(OpenError::InconsistentMeta {
            field: "cluster.id",
            ..
        })
    ));
    let after: Vec<String> = dirs.iter().map(|d| meta_text(d)).collect();
    assert_eq!(before, after, "nothing rewritten");
}
