//! Table tests of the active controller with time passed in (CLUSTER.md, "What
//! the active controller decides").
//!
//! Each file in `tests/controller/` is a script (format in
//! `klog_test_support::script`). After each command the records it returned are
//! printed (`+ ...`) and applied to the image as one committed log entry, then its
//! answer. Commands (times `t=` in ms, lists comma-separated):
//!
//! ```text
//! config [session=9000] [partitions=1] [rf=1] [min_isr=1] [unclean] [no_rebalance] [rebalance=300000]
//! activate t=
//! register id= [incarnation=a] [prev=-1] t=
//! heartbeat id= epoch= [offset=<image offset>] t= [want_fence] [shutdown]
//! tick t=
//! create name= [partitions=-1] [rf=-1] [assign=0:1.2,1:2.3] [configs=k:v,...] [validate_only]
//! delete names=
//! grow name= count= [assign=1.2,2.3] [validate_only]
//! alter broker= epoch= topic= p= le= pe= isr=
//! elect [unclean] [partitions=t-0,...]
//! set topic= key= [value=]
//! pids broker= epoch=
//! bootstrap node= topic= epochs= [configs=k:v] [next_pid=0]
//! partitions                               every partition of the image
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use klog_codec::protocol::ResponseError;
use klog_coordinator::metadata::{
    AlterPartition, BootstrapTopic, ConfigResource, Controller, ControllerConfig, CreateTopic,
    Heartbeat, MetadataImage, MetadataRecord, RegisterBroker,
};
use klog_replication::PartitionRegistration;
use klog_test_support::script::{Args, run_file, scripts};

mod common;
use common::{err_name, topic_partition};

fn list(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn reg(p: &PartitionRegistration) -> String {
    format!(
        "replicas={} isr={} elr={} leader={} le={} pe={}",
        list(&p.replicas),
        list(&p.isr),
        list(&p.elr),
        p.leader,
        p.leader_epoch,
        p.partition_epoch
    )
}

struct State {
    controller: Controller,
    image: MetadataImage,
}

/// Renders a record against the image it was applied to.
fn render(image: &MetadataImage, r: &MetadataRecord) -> String {
    let topic = |id| {
        image
            .topic_by_id(id)
            .map_or("?".to_owned(), |t| t.name.clone())
    };
    match r {
        MetadataRecord::RegisterBroker(b) => {
            format!("+ register broker={} epoch={}", b.id, b.epoch)
        }
        MetadataRecord::UnfenceBroker { id, epoch } => {
            format!("+ unfence broker={id} epoch={epoch}")
        }
        MetadataRecord::FenceBroker { id, epoch } => format!("+ fence broker={id} epoch={epoch}"),
        MetadataRecord::BeginShutdown { id, epoch } => {
            format!("+ shutdown broker={id} epoch={epoch}")
        }
        MetadataRecord::UnregisterBroker { id } => format!("+ unregister broker={id}"),
        MetadataRecord::Topic { name, .. } => format!("+ topic {name}"),
        MetadataRecord::Partition {
            topic_id,
            partition,
            registration,
        } => format!(
            "+ partition {}-{partition} {}",
            topic(*topic_id),
            reg(registration)
        ),
        MetadataRecord::PartitionChange {
            topic_id,
            partition,
            ..
        } => {
            let name = topic(*topic_id);
            let now = image
                .partition(&name, *partition)
                .map_or("gone".to_owned(), reg);
            format!("+ change {name}-{partition} -> {now}")
        }
        MetadataRecord::RemoveTopic { id } => format!("+ remove topic id={id}"),
        MetadataRecord::Config {
            resource,
            key,
            value,
        } => format!(
            "+ config {} {key}={}",
            String::from(resource.clone()),
            value.as_deref().unwrap_or("(removed)")
        ),
        MetadataRecord::ProducerIds {
            broker,
            next_producer_id,
            ..
        } => format!("+ producer_ids broker={broker} next={next_producer_id}"),
        other => format!("+ {other:?}"),
    }
}

/// Commits `records` as one entry and prints them.
fn commit(s: &mut State, records: &[MetadataRecord], out: &mut Vec<String>) {
    if records.is_empty() {
        return;
    }
    let offset = s.image.offset + 1;
    // Apply one at a time so each line shows the state right after its record.
    let mut delta = Default::default();
    s.image.offset = offset;
    for r in records {
        s.image
            .apply(r, &mut delta)
            .expect("the controller's records apply");
        out.push(render(&s.image, r));
    }
}

fn config(a: &Args) -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: a.i_or("session", 9000),
        default_partitions: a.i_or("partitions", 1) as i32,
        default_replication_factor: a.i_or("rf", 1) as i16,
        min_insync_replicas: a.i_or("min_isr", 1) as usize,
        unclean_leader_election: a.flag("unclean"),
        producer_id_block_size: 1000,
        auto_leader_rebalance: !a.flag("no_rebalance"),
        leader_imbalance_check_interval_ms: a.i_or("rebalance", 300_000),
    }
}

fn kv(a: &Args, k: &str) -> BTreeMap<String, String> {
    a.list(k)
        .iter()
        .map(|e| {
            let (k, v) = e.split_once(':').expect("key:value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn replica_lists(a: &Args, k: &str) -> Vec<Vec<i32>> {
    a.list(k)
        .iter()
        .map(|r| {
            r.split('.')
                .map(|b| b.parse().expect("broker id"))
                .collect()
        })
        .collect()
}

fn run(s: &mut State, name: &str, a: &Args) -> Vec<String> {
    let mut out = Vec::new();
    let t = a.i_or("t", 0);
    match name {
        "config" => s.controller = Controller::new(config(a), 7),
        "activate" => s.controller.activate(&s.image, t),
        "register" => {
            let req = RegisterBroker {
                id: a.i("id") as i32,
                incarnation: a.opt("incarnation").unwrap_or_else(|| "a".to_owned()),
                endpoints: Vec::new(),
                rack: None,
                previous_epoch: a.i_or("prev", -1),
            };
            match s.controller.register_broker(&s.image, req, t) {
                Ok(o) => {
                    commit(s, &o.records, &mut out);
                    out.push(format!("registered epoch={}", o.response));
                }
                Err(e) => out.push(format!("err={}", err_name(e))),
            }
        }
        "heartbeat" => {
            let req = Heartbeat {
                id: a.i("id") as i32,
                epoch: a.i("epoch"),
                metadata_offset: a.i_or("offset", s.image.offset as i64) as u64,
                want_fence: a.flag("want_fence"),
                want_shut_down: a.flag("shutdown"),
            };
            match s.controller.heartbeat(&s.image, req, t) {
                Ok(o) => {
                    commit(s, &o.records, &mut out);
                    let r = o.response;
                    out.push(format!(
                        "caught_up={} fenced={} should_shut_down={}",
                        r.is_caught_up, r.is_fenced, r.should_shut_down
                    ));
                }
                Err(e) => out.push(format!("err={}", err_name(e))),
            }
        }
        "tick" => {
            let records = s.controller.tick(&s.image, t);
            commit(s, &records, &mut out);
        }
        "create" => {
            let assignments = a
                .list("assign")
                .iter()
                .map(|e| {
                    let (p, r) = e.split_once(':').expect("partition:replicas");
                    (
                        p.parse().expect("partition"),
                        r.split('.').map(|b| b.parse().expect("broker")).collect(),
                    )
                })
                .collect();
            let topic = CreateTopic {
                name: a.s("name"),
                num_partitions: a.i_or("partitions", -1) as i32,
                replication_factor: a.i_or("rf", -1) as i16,
                assignments,
                configs: kv(a, "configs"),
            };
            let validate =
                |c: &BTreeMap<String, String>| match c.keys().find(|k| k.as_str() == "bad") {
                    Some(k) => Err((ResponseError::InvalidConfig.code(), format!("{k} is bad"))),
                    None => Ok(()),
                };
            let o =
                s.controller
                    .create_topics(&s.image, &[topic], a.flag("validate_only"), &validate);
            commit(s, &o.records, &mut out);
            for r in o.response {
                match r.message {
                    Some(m) => out.push(format!("{} err={} {m}", r.name, err_name(r.error))),
                    None => out.push(format!(
                        "{} created partitions={} rf={}",
                        r.name, r.num_partitions, r.replication_factor
                    )),
                }
            }
        }
        "delete" => {
            let o = s.controller.delete_topics(&s.image, &a.list("names"));
            commit(s, &o.records, &mut out);
            for (n, e, _) in o.response {
                out.push(format!("{n} err={}", err_name(e)));
            }
        }
        "grow" => {
            let assignments = a.opt("assign").map(|_| replica_lists(a, "assign"));
            match s.controller.create_partitions(
                &s.image,
                &a.s("name"),
                a.i("count") as i32,
                assignments.as_deref(),
                a.flag("validate_only"),
            ) {
                Ok(o) => {
                    commit(s, &o.records, &mut out);
                    out.push("ok".to_owned());
                }
                Err((e, m)) => out.push(format!("err={} {m}", err_name(e))),
            }
        }
        "alter" => {
            let req = AlterPartition {
                topic: a.s("topic"),
                partition: a.i("p") as i32,
                leader_epoch: a.i("le") as i32,
                partition_epoch: a.i("pe") as i32,
                isr: a.ints("isr"),
            };
            match s
                .controller
                .alter_partition(&s.image, a.i("broker") as i32, a.i("epoch"), &[req])
            {
                Ok(o) => {
                    commit(s, &o.records, &mut out);
                    for r in o.response {
                        match r {
                            Ok(p) => out.push(format!("ok {}", reg(&p))),
                            Err(e) => out.push(format!("err={}", err_name(e))),
                        }
                    }
                }
                Err(e) => out.push(format!("err={}", err_name(e))),
            }
        }
        "elect" => {
            let parts: Option<Vec<(String, i32)>> = a.opt("partitions").map(|_| {
                a.list("partitions")
                    .iter()
                    .map(|p| topic_partition(p))
                    .collect()
            });
            let o = s
                .controller
                .elect_leaders(&s.image, a.flag("unclean"), parts.as_deref());
            commit(s, &o.records, &mut out);
            for ((t, p), e) in o.response {
                out.push(format!("{t}-{p} err={}", err_name(e)));
            }
        }
        "set" => {
            let resource = ConfigResource::Topic(a.s("topic"));
            match s
                .controller
                .set_configs(&s.image, &resource, &[(a.s("key"), a.opt("value"))])
            {
                Ok(o) => commit(s, &o.records, &mut out),
                Err(e) => out.push(format!("err={}", err_name(e))),
            }
        }
        "pids" => {
            match s
                .controller
                .allocate_producer_ids(&s.image, a.i("broker") as i32, a.i("epoch"))
            {
                Ok(o) => {
                    commit(s, &o.records, &mut out);
                    out.push(format!("block start={} len={}", o.response.0, o.response.1));
                }
                Err(e) => out.push(format!("err={}", err_name(e))),
            }
        }
        "bootstrap" => {
            let topic = BootstrapTopic {
                name: a.s("topic"),
                leader_epochs: a.ints("epochs"),
                configs: kv(a, "configs"),
            };
            let records = s.controller.bootstrap(
                &s.image,
                a.i("node") as i32,
                &[topic],
                a.i_or("next_pid", 0),
            );
            commit(s, &records, &mut out);
        }
        "partitions" => {
            for (t, i, p) in s.image.partitions() {
                out.push(format!("{}-{i} {}", t.name, reg(p)));
            }
        }
        other => panic!("unknown command {other}"),
    }
    out
}

#[test]
fn testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controller");
    for f in scripts(&dir) {
        run_file(
            &f,
            || State {
                controller: Controller::new(ControllerConfig::default(), 7),
                image: MetadataImage::new(),
            },
            run,
        );
    }
}

/// Snapshots and the log encoding give back the same image and records.
#[test]
fn image_and_records_round_trip() {
    let mut s = State {
        controller: Controller::new(ControllerConfig::default(), 7),
        image: MetadataImage::new(),
    };
    let mut all = Vec::new();
    for id in 1..=3 {
        let o = s
            .controller
            .register_broker(
                &s.image,
                RegisterBroker {
                    id,
                    incarnation: format!("i{id}"),
                    endpoints: Vec::new(),
                    rack: None,
                    previous_epoch: -1,
                },
                0,
            )
            .expect("register");
        all.extend(o.records.clone());
        commit(&mut s, &o.records, &mut Vec::new());
        let epoch = o.response;
        let hb = Heartbeat {
            id,
            epoch,
            metadata_offset: s.image.offset,
            want_fence: false,
            want_shut_down: false,
        };
        let o = s.controller.heartbeat(&s.image, hb, 1).expect("heartbeat");
        all.extend(o.records.clone());
        commit(&mut s, &o.records, &mut Vec::new());
    }
    let topic = CreateTopic {
        name: "t".to_owned(),
        num_partitions: 3,
        replication_factor: 3,
        configs: BTreeMap::from([("min.insync.replicas".to_owned(), "2".to_owned())]),
        ..CreateTopic::default()
    };
    let o = s
        .controller
        .create_topics(&s.image, &[topic], false, &|_| Ok(()));
    all.extend(o.records.clone());
    commit(&mut s, &o.records, &mut Vec::new());
    let bytes = klog_coordinator::metadata::encode_batch(&all);
    assert_eq!(
        klog_coordinator::metadata::decode_batch(&bytes).expect("decode"),
        all
    );
    let mut replayed = MetadataImage::new();
    replayed.apply_batch(s.image.offset, &all).expect("replay");
    assert_eq!(replayed.topics, s.image.topics);
    assert_eq!(replayed.brokers.len(), 3);
    let restored = MetadataImage::from_snapshot(&s.image.to_snapshot()).expect("snapshot");
    assert_eq!(restored, s.image);
    assert!(klog_coordinator::metadata::decode_batch(b"not json").is_err());
}

/// A controller that takes over with the same id seed as the one before it (two
/// controllers in one process, started in the same millisecond) still gives each
/// new topic an id no other topic has.
#[test]
fn a_new_controller_seeded_alike_gives_new_topics_fresh_ids() {
    let mut s = State {
        controller: Controller::new(ControllerConfig::default(), 7),
        image: MetadataImage::new(),
    };
    let create = |name: &str| CreateTopic {
        name: name.to_owned(),
        num_partitions: 1,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    let o = s
        .controller
        .register_broker(
            &s.image,
            RegisterBroker {
                id: 1,
                incarnation: "i1".to_owned(),
                endpoints: Vec::new(),
                rack: None,
                previous_epoch: -1,
            },
            0,
        )
        .expect("register");
    commit(&mut s, &o.records, &mut Vec::new());
    let hb = Heartbeat {
        id: 1,
        epoch: o.response,
        metadata_offset: s.image.offset,
        want_fence: false,
        want_shut_down: false,
    };
    let o = s.controller.heartbeat(&s.image, hb, 1).expect("heartbeat");
    commit(&mut s, &o.records, &mut Vec::new());
    let ok = |_: &BTreeMap<String, String>| Ok(());
    let o = s
        .controller
        .create_topics(&s.image, &[create("a")], false, &ok);
    commit(&mut s, &o.records, &mut Vec::new());
    // Failover: a fresh controller with the same seed.
    s.controller = Controller::new(ControllerConfig::default(), 7);
    s.controller.activate(&s.image, 2);
    let o = s
        .controller
        .create_topics(&s.image, &[create("b")], false, &ok);
    commit(&mut s, &o.records, &mut Vec::new());
    let a = s.image.topic("a").expect("a").id;
    let b = s.image.topic("b").expect("b").id;
    assert_ne!(a, b, "two topics share an id");
}
