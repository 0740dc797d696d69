//! A broker of your own, composed from the crates: klog-broker's request handling
//! and server over klog-storage logs, with a topic policy the stock `klog-broker`
//! binary does not have. Topics must be named `<team>.<name>` for a known team and
//! keep their records at most a week; anything else a client tries to create,
//! explicitly or by auto-creation, is refused with POLICY_VIOLATION.
//!
//! ```text
//! cargo run --example custom_broker -- 127.0.0.1:9092 ./custom-data
//! kcat -b 127.0.0.1:9092 -P -t payments.events   # accepted
//! kcat -b 127.0.0.1:9092 -P -t scratch           # Broker: Policy violation
//! ```
//!
//! Ctrl-C stops it cleanly.

use std::collections::BTreeMap;

use anyhow::Context;
use klog_broker::BrokerConfig;
use klog_broker::alloc::BrokerAllocator;
use klog_broker::node::Node;
use klog_broker::policy::{CreateTopicPolicy, NewTopic};

// As in the klog-broker binary: requests whose counts claim huge arrays cost
// address space, not memory (see klog_broker::alloc).
#[global_allocator]
static ALLOC: BrokerAllocator = BrokerAllocator;

const TEAMS: &[&str] = &["payments", "search", "ops"];
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

struct TeamTopics;

impl CreateTopicPolicy for TeamTopics {
    fn validate(&self, topic: &NewTopic<'_>) -> Result<(), String> {
        let team = topic.name.split_once('.').map(|(team, _)| team);
        if !team.is_some_and(|t| TEAMS.contains(&t)) {
            return Err(format!(
                "{}: name topics <team>.<name>, teams {TEAMS:?}",
                topic.name
            ));
        }
        let retention = topic.configs.get("retention.ms").map(|v| v.parse::<i64>());
        match retention {
            Some(Ok(ms)) if !(0..=WEEK_MS).contains(&ms) => {
                Err(format!("retention.ms {ms}: at most a week ({WEEK_MS})"))
            }
            _ => Ok(()),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let data = args.next().unwrap_or_else(|| "./custom-data".to_owned());
    let settings = BTreeMap::from([
        ("listeners", format!("PLAINTEXT://{listen}")),
        ("log.dirs", data),
        ("num.partitions", "3".to_owned()),
    ]);
    let pairs: Vec<(String, String)> = settings
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let (config, _) = BrokerConfig::from_pairs(pairs)?;
    let address = config.listener;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // A one-node cluster: its own metadata quorum, with the policy on its
        // controller.
        let node = Node::start_with_policy(config, Some(Box::new(TeamTopics)))
            .await
            .context("starting the node")?;
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!(
            "custom broker on {}; teams {TEAMS:?}",
            listener.local_addr()?
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        klog_broker::net::run(node.broker().clone(), listener, stop).await?;
        node.shutdown().await.context("flushing logs")?;
        anyhow::Ok(())
    })?;
    Ok(())
}
