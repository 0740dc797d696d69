//! Table tests of the group state machine with time passed in.
//!
//! Each file in `tests/testdata/` is a script: a command line, a `----` line, the
//! expected output (every answer and action the command produced, in order), and a
//! blank line. `# ...` lines are comments. Set `KLOG_REWRITE=1` to print the actual
//! output of a failing file instead of only the first difference.
//!
//! Commands (times `t=` in ms; member ids are generated as `<client>-0-<n>`):
//!
//! ```text
//! config initial_delay=.. min_session=.. max_session=.. retention=.. retention_check=..
//! join t= req= group= member=(-|id) client= v= session= rebalance= protocols=a,b [instance=] [type=]
//! sync t= req= group= gen= member= [instance=] [assign=m:bytes,...]
//! heartbeat t= group= gen= member= [instance=]
//! leave t= group= members=id,... [instances=i,...]   (instances pair with empty ids)
//! commit t= group= gen= member= offsets=topic-p:offset,... [retention=] [instance=]
//!        [append=ok|fail|later]   (the append's outcome; `later` prints the commit id)
//! appended group= commit= ok=true|false   (a `later` commit's append completes)
//! fetch group= [partitions=topic-p,...]
//! delete_offsets group= partitions=topic-p,...
//! tick t=
//! describe group=
//! list
//! delete_groups t= groups=g,...
//! ```

use std::path::Path;

use bytes::Bytes;
use klog_coordinator::schema::{RecordKey, decode_group_value, decode_key, decode_offset_value};
use klog_coordinator::{
    Action, CommitPartition, CoordinatorConfig, GroupCoordinator, JoinGroup, MemberRef,
    OffsetCommit, Protocol, SyncGroup,
};
use klog_test_support::script::{Args, run_file, scripts};

mod common;
use common::{err_name, topic_partition};

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn render_action(a: &Action) -> String {
    match a {
        Action::RespondJoin { request, response } => {
            if response.error != 0 {
                return format!(
                    "join req={request} err={} member={}",
                    err_name(response.error),
                    response.member_id
                );
            }
            let members: Vec<String> = response
                .members
                .iter()
                .map(|m| format!("{}:{}", m.member_id, text(&m.metadata)))
                .collect();
            format!(
                "join req={request} err=NONE gen={} proto={} leader={} member={} members=[{}]",
                response.generation_id,
                response.protocol_name.as_deref().unwrap_or("-"),
                response.leader,
                response.member_id,
                members.join(",")
            )
        }
        Action::RespondSync { request, response } => format!(
            "sync req={request} err={} assignment={}",
            err_name(response.error),
            text(&response.assignment)
        ),
        Action::PersistGroupMetadata {
            partition,
            group,
            record,
        } => {
            assert_eq!(
                decode_key(&record.key).expect("key"),
                RecordKey::Group {
                    group: group.clone()
                }
            );
            match &record.value {
                None => format!("persist group {group} p={partition} tombstone"),
                Some(v) => {
                    let v = decode_group_value(v).expect("group value");
                    let members: Vec<String> = v
                        .members
                        .iter()
                        .map(|m| format!("{}:{}", m.member_id, text(&m.assignment)))
                        .collect();
                    format!(
                        "persist group {group} p={partition} gen={} proto={} leader={} members=[{}]",
                        v.generation,
                        v.protocol.as_deref().unwrap_or("-"),
                        v.leader.as_deref().unwrap_or("-"),
                        members.join(",")
                    )
                }
            }
        }
        Action::PersistOffsets {
            partition,
            group,
            records,
            ..
        } => {
            let items: Vec<String> = records
                .iter()
                .map(|r| {
                    let RecordKey::Offset {
                        group: g,
                        topic,
                        partition,
                    } = decode_key(&r.key).expect("key")
                    else {
                        panic!("not an offset key");
                    };
                    assert_eq!(&g, group);
                    match &r.value {
                        None => format!("{topic}-{partition}=tombstone"),
                        Some(v) => {
                            format!(
                                "{topic}-{partition}={}",
                                decode_offset_value(v).expect("value").offset
                            )
                        }
                    }
                })
                .collect();
            format!("persist offsets {group} p={partition} {}", items.join(" "))
        }
    }
}

fn run(c: &mut GroupCoordinator, name: &str, a: &Args) -> Vec<String> {
    let mut out = Vec::new();
    match name {
        "config" => *c = GroupCoordinator::new(config(a)),
        "join" => {
            let member = a.s("member");
            c.join(
                JoinGroup {
                    request: a.i("req") as u64,
                    version: a.opt("v").map_or(5, |v| v.parse().expect("v")),
                    group_id: a.s("group"),
                    member_id: if member == "-" { String::new() } else { member },
                    group_instance_id: a.opt("instance"),
                    client_id: a.s("client"),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: a.i("session") as i32,
                    rebalance_timeout_ms: a.i("rebalance") as i32,
                    protocol_type: a.opt("type").unwrap_or_else(|| "consumer".into()),
                    protocols: a
                        .list("protocols")
                        .into_iter()
                        .map(|p| {
                            // name or name:metadata
                            let (name, md) = p.split_once(':').unwrap_or((&p, ""));
                            Protocol {
                                name: name.to_owned(),
                                metadata: Bytes::from(md.to_owned()),
                            }
                        })
                        .collect(),
                },
                a.i("t"),
            );
        }
        "sync" => c.sync(
            SyncGroup {
                request: a.i("req") as u64,
                group_id: a.s("group"),
                generation_id: a.i("gen") as i32,
                member_id: a.s("member"),
                group_instance_id: a.opt("instance"),
                assignments: a
                    .list("assign")
                    .into_iter()
                    .map(|x| {
                        let (m, b) = x.split_once(':').expect("member:assignment");
                        (m.to_owned(), Bytes::from(b.to_owned()))
                    })
                    .collect(),
            },
            a.i("t"),
        ),
        "heartbeat" => {
            let code = c.heartbeat(
                &a.s("group"),
                a.i("gen") as i32,
                &MemberRef {
                    member_id: a.s("member"),
                    group_instance_id: a.opt("instance"),
                },
                a.i("t"),
            );
            out.push(format!("heartbeat err={}", err_name(code)));
        }
        "leave" => {
            let mut members: Vec<MemberRef> = a
                .list("members")
                .into_iter()
                .map(|m| MemberRef {
                    member_id: m,
                    group_instance_id: None,
                })
                .collect();
            members.extend(a.list("instances").into_iter().map(|i| MemberRef {
                member_id: String::new(),
                group_instance_id: Some(i),
            }));
            let r = c.leave(&a.s("group"), members, a.i("t"));
            let per: Vec<String> = r
                .members
                .iter()
                .map(|(m, e)| {
                    let who = if m.member_id.is_empty() {
                        m.group_instance_id.clone().unwrap_or_default()
                    } else {
                        m.member_id.clone()
                    };
                    format!("{who}={}", err_name(*e))
                })
                .collect();
            out.push(format!("leave err={} {}", err_name(r.error), per.join(" ")));
        }
        "commit" => {
            let offsets = a
                .list("offsets")
                .into_iter()
                .map(|x| {
                    let (tp, o) = x.split_once(':').expect("tp:offset");
                    let (topic, partition) = topic_partition(tp);
                    CommitPartition {
                        topic,
                        partition,
                        offset: o.parse().expect("offset"),
                        leader_epoch: -1,
                        metadata: None,
                    }
                })
                .collect();
            let r = c.commit_offsets(
                OffsetCommit {
                    group_id: a.s("group"),
                    generation_id: a.i("gen") as i32,
                    member_id: a.opt("member").unwrap_or_default(),
                    group_instance_id: a.opt("instance"),
                    retention_time_ms: a.opt("retention").map_or(-1, |r| r.parse().expect("ms")),
                    offsets,
                },
                a.i("t"),
            );
            let per: Vec<String> = r
                .iter()
                .map(|(t, p, e)| format!("{t}-{p}={}", err_name(*e)))
                .collect();
            out.push(format!("commit {}", per.join(" ")));
            // The runtime appends the records, waits for the ISR, reports back.
            let actions = c.take_actions();
            out.extend(actions.iter().map(render_action));
            for action in &actions {
                if let Action::PersistOffsets {
                    group,
                    commit: Some(id),
                    ..
                } = action
                {
                    match a.opt("append").as_deref().unwrap_or("ok") {
                        "ok" => c.complete_commit(group, *id, true),
                        "fail" => c.complete_commit(group, *id, false),
                        "later" => out.push(format!("staged commit={id}")),
                        other => panic!("append={other}"),
                    }
                }
            }
        }
        "appended" => {
            let ok = match a.s("ok").as_str() {
                "true" => true,
                "false" => false,
                other => panic!("ok={other}"),
            };
            c.complete_commit(&a.s("group"), a.i("commit") as u64, ok);
        }
        "fetch" => {
            let parts: Option<Vec<(String, i32)>> = a.opt("partitions").map(|_| {
                a.list("partitions")
                    .iter()
                    .map(|s| topic_partition(s))
                    .collect()
            });
            let r = c.fetch_offsets(&a.s("group"), parts.as_deref());
            let per: Vec<String> = r
                .iter()
                .map(|f| format!("{}-{}={}", f.topic, f.partition, f.offset))
                .collect();
            out.push(format!("fetch {}", per.join(" ")));
        }
        "delete_offsets" => {
            let parts: Vec<(String, i32)> = a
                .list("partitions")
                .iter()
                .map(|s| topic_partition(s))
                .collect();
            let (top, per) = c.delete_offsets(&a.s("group"), &parts);
            let per: Vec<String> = per
                .iter()
                .map(|(t, p, e)| format!("{t}-{p}={}", err_name(*e)))
                .collect();
            out.push(format!(
                "delete_offsets err={} {}",
                err_name(top),
                per.join(" ")
            ));
        }
        "tick" => {
            let now = a.i("t");
            c.tick(now);
            // The broker's timer sleeps until next_deadline(): after a tick nothing
            // may be due any more, or the timer would spin.
            if let Some(at) = c.next_deadline() {
                assert!(at > now, "deadline {at} still due after tick at {now}");
            }
        }
        "describe" => {
            let d = c.describe_group(&a.s("group"));
            let members: Vec<String> = d.members.iter().map(|m| m.member_id.clone()).collect();
            out.push(format!(
                "describe state={} gen={} proto={} members=[{}]",
                d.state.name(),
                c.generation(&a.s("group"))
                    .map_or("-".into(), |g| g.to_string()),
                if d.protocol.is_empty() {
                    "-"
                } else {
                    &d.protocol
                },
                members.join(",")
            ));
        }
        "list" => {
            let l: Vec<String> = c
                .list_groups()
                .iter()
                .map(|g| format!("{}={}", g.group_id, g.state.name()))
                .collect();
            out.push(format!("list {}", l.join(" ")));
        }
        "delete_groups" => {
            let r = c.delete_groups(&a.list("groups"), a.i("t"));
            let per: Vec<String> = r
                .iter()
                .map(|(g, e)| format!("{g}={}", err_name(*e)))
                .collect();
            out.push(format!("delete_groups {}", per.join(" ")));
        }
        other => panic!("unknown command {other}"),
    }
    // Immediate answers first, then the actions in the order they were emitted.
    out.extend(c.take_actions().iter().map(render_action));
    out
}

fn config(a: &Args) -> CoordinatorConfig {
    let mut c = CoordinatorConfig {
        offsets_topic_partitions: 50,
        ..CoordinatorConfig::default()
    };
    if let Some(v) = a.opt("initial_delay") {
        c.initial_rebalance_delay_ms = v.parse().expect("ms");
    }
    if let Some(v) = a.opt("min_session") {
        c.min_session_timeout_ms = v.parse().expect("ms");
    }
    if let Some(v) = a.opt("max_session") {
        c.max_session_timeout_ms = v.parse().expect("ms");
    }
    if let Some(v) = a.opt("retention") {
        c.offsets_retention_ms = v.parse().expect("ms");
    }
    if let Some(v) = a.opt("retention_check") {
        c.offsets_retention_check_interval_ms = v.parse().expect("ms");
    }
    c
}

#[test]
fn testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    for f in scripts(&dir) {
        run_file(
            &f,
            || GroupCoordinator::new(CoordinatorConfig::default()),
            run,
        );
    }
}
