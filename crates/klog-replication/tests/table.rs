//! Table tests of the replica state machines, with time passed in.
//!
//! Each file in `tests/testdata/` is a script (format in
//! `klog_test_support::script`). One file may drive a leader, a follower and a
//! partition registration; commands (times `t=` in ms, lists comma-separated,
//! epoch histories as `epoch@start_offset,...`):
//!
//! ```text
//! leader node= replicas= isr= [elr=] [min_isr=1] [lag=30000] [backoff=100] [leo=0] [hw=0] [le=0] [pe=0] [t=0]
//! append leo= t=                          the leader's log grew
//! fetch from= offset= t= [epoch=]         a follower fetched
//! produce id= required= deadline=         an acks=all produce waits for `required`
//! acks_all                                the produce-time min ISR check
//! tick t=
//! commit isr= pe= [elr=] [le=] [leader=] [replicas=] t=   a newer partition state
//! reject pe= code= t=                     the controller refused the proposal
//! eligible id= value=yes|no t=
//! resign
//! state
//!
//! follower leader= epoch= history= leo= [hw=0]   becomes follower; prints its step
//! leader_log history= leo=                 the leader's log, for `converge`
//! answer epoch= end=                       the leader's OffsetForLeaderEpoch answer
//! converge                                 answer from leader_log until it fetches
//! fetched leader_hw= leo=                  a fetch response
//!
//! partition replicas= isr= leader= [elr=] [le=0] [pe=0] [min_isr=1] [unclean]
//! fence broker=                          fenced (or shutting down)
//! unclean_restart broker=                  restarted after an unclean shutdown
//! unfence broker=
//! preferred                                preferred-leader election
//! alter from= le= pe= isr=                 AlterPartition
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use klog_replication::{
    Action, AfterTruncate, EpochEndOffset, EpochEntry, FollowerState, FollowerStep, LeaderConfig,
    LeaderState, PartitionRegistration, codes,
};
use klog_test_support::script::{Args, run_file, scripts};

fn err_name(code: i16) -> String {
    match code {
        0 => "NONE",
        codes::OFFSET_OUT_OF_RANGE => "OFFSET_OUT_OF_RANGE",
        codes::NOT_LEADER_OR_FOLLOWER => "NOT_LEADER_OR_FOLLOWER",
        codes::REQUEST_TIMED_OUT => "REQUEST_TIMED_OUT",
        codes::NOT_ENOUGH_REPLICAS => "NOT_ENOUGH_REPLICAS",
        codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        codes::INVALID_REQUEST => "INVALID_REQUEST",
        codes::FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
        codes::UNKNOWN_LEADER_EPOCH => "UNKNOWN_LEADER_EPOCH",
        codes::INVALID_UPDATE_VERSION => "INVALID_UPDATE_VERSION",
        codes::NEW_LEADER_ELECTED => "NEW_LEADER_ELECTED",
        codes::INELIGIBLE_REPLICA => "INELIGIBLE_REPLICA",
        _ => return format!("code{code}"),
    }
    .to_owned()
}

fn list(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn history(a: &Args, k: &str) -> Vec<EpochEntry> {
    a.list(k)
        .iter()
        .map(|e| {
            let (epoch, start) = e.split_once('@').expect("epoch@start_offset");
            EpochEntry {
                epoch: epoch.parse().expect("epoch"),
                start_offset: start.parse().expect("start offset"),
            }
        })
        .collect()
}

fn render_history(h: &[EpochEntry]) -> String {
    if h.is_empty() {
        return "-".to_owned();
    }
    h.iter()
        .map(|e| format!("{}@{}", e.epoch, e.start_offset))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Default)]
struct State {
    leader: Option<LeaderState>,
    follower: Option<Follower>,
    leader_log: (Vec<EpochEntry>, i64),
    partition: Option<Partition>,
}

/// A follower and a model of its local log.
struct Follower {
    state: FollowerState,
    history: Vec<EpochEntry>,
    leo: i64,
}

struct Partition {
    reg: PartitionRegistration,
    fenced: BTreeSet<i32>,
    min_isr: usize,
    unclean: bool,
}

fn leader(s: &mut State) -> &mut LeaderState {
    s.leader.as_mut().expect("no `leader` line yet")
}

fn drain(l: &mut LeaderState, out: &mut Vec<String>) {
    while let Some(a) = l.poll_action() {
        out.push(match a {
            Action::AdvanceHighWatermark { high_watermark } => format!("hw -> {high_watermark}"),
            Action::CompleteDelayedProduce { id, outcome } => {
                format!("complete id={id} {}", err_name(outcome.code()))
            }
            Action::ProposeIsr(p) => format!(
                "propose isr={} le={} pe={}",
                list(&p.isr),
                p.leader_epoch,
                p.partition_epoch
            ),
        });
    }
}

fn registration(a: &Args) -> PartitionRegistration {
    let replicas = a.ints("replicas");
    PartitionRegistration {
        isr: a
            .opt("isr")
            .map_or_else(|| replicas.clone(), |_| a.ints("isr")),
        elr: a.ints("elr"),
        leader: a.i_or("leader", i64::from(replicas.first().copied().unwrap_or(-1))) as i32,
        leader_epoch: a.i_or("le", 0) as i32,
        partition_epoch: a.i_or("pe", 0) as i32,
        last_known_leader: klog_replication::NO_LEADER,
        replicas,
    }
}

fn render_reg(r: &PartitionRegistration) -> String {
    format!(
        "leader={} le={} pe={} isr={} elr={}",
        r.leader,
        r.leader_epoch,
        r.partition_epoch,
        list(&r.isr),
        list(&r.elr)
    )
}

/// Applies a follower step to the local log model and renders it.
fn follower_step(f: &mut Follower, step: FollowerStep) -> String {
    match step {
        FollowerStep::AskEpochEnd { epoch } => format!("ask epoch={epoch}"),
        FollowerStep::Fetch { offset } => format!("fetch offset={offset}"),
        FollowerStep::Truncate { offset, then } => {
            f.history.retain(|e| e.start_offset < offset);
            f.leo = offset;
            let then = match then {
                AfterTruncate::AskEpochEnd { epoch } => format!("ask epoch={epoch}"),
                AfterTruncate::Fetch => format!("fetch offset={offset}"),
            };
            format!(
                "truncate to={offset} history={} then {then}",
                render_history(&f.history)
            )
        }
    }
}

fn run(s: &mut State, name: &str, a: &Args) -> Vec<String> {
    let mut out = Vec::new();
    let t = || a.i_or("t", 0);
    match name {
        "leader" => {
            let config = LeaderConfig {
                min_insync_replicas: a.i_or("min_isr", 1) as usize,
                replica_lag_time_max_ms: a.i_or("lag", 30_000),
                isr_retry_backoff_ms: a.i_or("backoff", 100),
            };
            let node = a.i("node") as i32;
            let mut reg = registration(a);
            reg.leader = node;
            let mut l =
                LeaderState::new(node, &reg, config, a.i_or("leo", 0), a.i_or("hw", 0), t());
            drain(&mut l, &mut out);
            s.leader = Some(l);
        }
        "append" => {
            let l = leader(s);
            l.on_append(a.i("leo"), t());
            drain(l, &mut out);
        }
        "fetch" => {
            let l = leader(s);
            let epoch = a.opt("epoch").map(|e| e.parse().expect("epoch"));
            match l.on_follower_fetch(a.i("from") as i32, a.i("offset"), epoch, t()) {
                Ok(()) => out.push(format!("fetch hw={}", l.high_watermark())),
                Err(e) => out.push(format!("fetch err={}", err_name(e.code()))),
            }
            drain(l, &mut out);
        }
        "produce" => {
            let l = leader(s);
            let id = a.i("id") as u64;
            match l.register_delayed_produce(id, a.i("required"), a.i("deadline")) {
                Some(o) => out.push(format!("produce id={id} {}", err_name(o.code()))),
                None => out.push(format!("produce id={id} waiting")),
            }
            drain(l, &mut out);
        }
        "acks_all" => match leader(s).check_acks_all() {
            Ok(()) => out.push("acks_all ok".to_owned()),
            Err(e) => out.push(format!("acks_all err={}", err_name(e.code()))),
        },
        "tick" => {
            let l = leader(s);
            l.tick(t());
            drain(l, &mut out);
        }
        "commit" => {
            let l = leader(s);
            let mut reg = PartitionRegistration {
                replicas: l.replicas().to_vec(),
                isr: a.ints("isr"),
                elr: a.ints("elr"),
                leader: l.node_id(),
                leader_epoch: l.leader_epoch(),
                partition_epoch: a.i("pe") as i32,
                last_known_leader: klog_replication::NO_LEADER,
            };
            if a.opt("replicas").is_some() {
                reg.replicas = a.ints("replicas");
            }
            reg.leader = a.i_or("leader", i64::from(reg.leader)) as i32;
            reg.leader_epoch = a.i_or("le", i64::from(reg.leader_epoch)) as i32;
            if !l.on_partition_state(&reg, t()) {
                out.push("resigned".to_owned());
            }
            drain(l, &mut out);
        }
        "reject" => {
            let l = leader(s);
            l.on_isr_change_failed(a.i("pe") as i32, a.i("code") as i16, t());
            drain(l, &mut out);
        }
        "eligible" => {
            let l = leader(s);
            l.set_replica_eligible(a.i("id") as i32, a.s("value") == "yes", t());
            drain(l, &mut out);
        }
        "resign" => {
            let l = leader(s);
            l.resign();
            drain(l, &mut out);
        }
        "state" => {
            let l = leader(s);
            let pending = l.pending_proposal().map_or("none".to_owned(), |p| {
                format!("{}@pe{}", list(&p.isr), p.partition_epoch)
            });
            out.push(format!(
                "hw={} leo={} isr={} elr={} pending={pending} delayed={}",
                l.high_watermark(),
                l.log_end_offset(),
                list(l.isr()),
                list(l.elr()),
                l.delayed_produces()
            ));
        }
        "follower" => {
            let history = history(a, "history");
            let leo = a.i("leo");
            let (state, step) = FollowerState::new(
                a.i("leader") as i32,
                a.i("epoch") as i32,
                &history,
                leo,
                a.i_or("hw", 0),
            );
            let mut f = Follower {
                state,
                history,
                leo,
            };
            out.push(follower_step(&mut f, step));
            s.follower = Some(f);
        }
        "leader_log" => s.leader_log = (history(a, "history"), a.i("leo")),
        "answer" | "converge" => {
            let f = s.follower.as_mut().expect("no `follower` line yet");
            // Bounded: each round cuts to a strictly older epoch.
            for _ in 0..16 {
                let Some(asked) = f.state.awaiting_epoch_end() else {
                    break;
                };
                let answer = if name == "answer" {
                    EpochEndOffset {
                        leader_epoch: a.i("epoch") as i32,
                        end_offset: a.i("end"),
                    }
                } else {
                    EpochEndOffset::answer(&s.leader_log.0, s.leader_log.1, asked)
                };
                out.push(format!(
                    "leader answers epoch={} end={}",
                    answer.leader_epoch, answer.end_offset
                ));
                let step = f
                    .state
                    .on_epoch_end(answer, &f.history, f.leo)
                    .expect("an answer was awaited");
                out.push(follower_step(f, step));
                if name == "answer" {
                    break;
                }
            }
        }
        "fetched" => {
            let f = s.follower.as_mut().expect("no `follower` line yet");
            f.leo = a.i("leo");
            if let Some(hw) = f.state.on_fetch_response(a.i("leader_hw"), f.leo) {
                out.push(format!("hw -> {hw}"));
            }
        }
        "partition" => {
            s.partition = Some(Partition {
                reg: registration(a),
                fenced: BTreeSet::new(),
                min_isr: a.i_or("min_isr", 1) as usize,
                unclean: a.flag("unclean"),
            });
        }
        "fence" | "unfence" | "unclean_restart" | "preferred" | "alter" => {
            let p = s.partition.as_mut().expect("no `partition` line yet");
            let broker = a.i_or("broker", -1) as i32;
            if name == "fence" {
                p.fenced.insert(broker);
            } else if name == "unfence" {
                p.fenced.remove(&broker);
            }
            let fenced = p.fenced.clone();
            let unfenced = |r: i32| !fenced.contains(&r);
            let changed = match name {
                "fence" => p.reg.fence_broker(broker, unfenced, p.min_isr, p.unclean),
                "unclean_restart" => p.reg.unclean_restart(broker),
                "unfence" => p.reg.broker_unfenced(unfenced, p.unclean),
                "preferred" => p.reg.elect_preferred(unfenced),
                _ => match p.reg.alter_isr(
                    a.i("from") as i32,
                    a.i("le") as i32,
                    a.i("pe") as i32,
                    &a.ints("isr"),
                    unfenced,
                    p.min_isr,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        out.push(format!("err={}", err_name(e.code())));
                        return out;
                    }
                },
            };
            out.push(if changed {
                render_reg(&p.reg)
            } else {
                format!("unchanged {}", render_reg(&p.reg))
            });
        }
        other => panic!("unknown command {other}"),
    }
    out
}

#[test]
fn testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    for f in scripts(&dir) {
        run_file(&f, State::default, run);
    }
}
