//! `klog-admin`: topic and consumer-group administration for klog (or any Kafka
//! broker), like Kafka's `kafka-topics` and `kafka-consumer-groups`.
//!
//! ```text
//! klog-admin --bootstrap-server HOST:PORT topics create --topic T [--partitions N]
//!     [--replication-factor R] [--config key=value]...
//! klog-admin --bootstrap-server HOST:PORT topics delete --topic T
//! klog-admin --bootstrap-server HOST:PORT topics list
//! klog-admin --bootstrap-server HOST:PORT topics describe [--topic T]
//! klog-admin --bootstrap-server HOST:PORT groups list
//! klog-admin --bootstrap-server HOST:PORT groups describe --group G
//! ```

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use klog_client::error::ResponseError;
use klog_client::{Admin, AdminError, ClientConfig, ConfigResource, NewTopic};

#[derive(Parser, Debug)]
#[command(
    name = "klog-admin",
    version,
    about = "Administers topics and consumer groups"
)]
struct Cli {
    /// Broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, delete, list and describe topics.
    #[command(subcommand)]
    Topics(Topics),
    /// List and describe consumer groups.
    #[command(subcommand)]
    Groups(Groups),
}

#[derive(Subcommand, Debug)]
enum Groups {
    /// List group ids.
    List,
    /// Describe a group: state, members, and per partition the committed offset,
    /// log end offset and lag (like kafka-consumer-groups.sh --describe).
    Describe {
        /// Group id.
        #[arg(long)]
        group: String,
    },
}

#[derive(Subcommand, Debug)]
enum Topics {
    /// Create a topic.
    Create {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// Topic config KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Succeed if the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        #[arg(long)]
        topic: String,
    },
    /// List topic names.
    List,
    /// Describe topics: partitions, leaders, replicas, ISR and non-default configs.
    Describe {
        /// Topic name (all topics if omitted).
        #[arg(long)]
        topic: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = ClientConfig::new(&cli.bootstrap_server);
    config.client_id = "klog-admin".to_owned();
    config.allow_auto_create_topics = false;
    let admin = Admin::new(config)?;
    let cmd = match cli.command {
        Command::Topics(cmd) => cmd,
        Command::Groups(cmd) => return groups(&admin, cmd).await,
    };
    match cmd {
        Topics::Create {
            topic,
            partitions,
            replication_factor,
            config,
            if_not_exists,
        } => {
            let mut t = NewTopic::new(topic.clone(), partitions.unwrap_or(-1))
                .with_replication_factor(replication_factor.unwrap_or(-1));
            for c in &config {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("--config {c:?}: expected KEY=VALUE"))?;
                t = t.with_config(k, v);
            }
            let results = admin.create_topics(&[t]).await?;
            match results.into_iter().next().context("no result")? {
                Ok(()) => println!("Created topic {topic}."),
                Err(AdminError::Topic {
                    error: ResponseError::TopicAlreadyExists,
                    ..
                }) if if_not_exists => {}
                Err(e) => bail!("{e}"),
            }
        }
        Topics::Delete { topic } => {
            let results = admin.delete_topics(std::slice::from_ref(&topic)).await?;
            results.into_iter().next().context("no result")??;
            println!("Deleted topic {topic}.");
        }
        Topics::List => {
            for name in admin.list_topics().await? {
                println!("{name}");
            }
        }
        Topics::Describe { topic } => {
            let names = match topic {
                Some(t) => vec![t],
                None => admin.list_topics().await?,
            };
            for info in admin.describe_topics(&names).await? {
                let rf = info.partitions.first().map_or(0, |p| p.replicas.len());
                let configs = admin
                    .describe_configs(ConfigResource::Topic(&info.name), None)
                    .await
                    .map(|entries| {
                        entries
                            .into_iter()
                            .filter(|e| !e.is_default)
                            .map(|e| format!("{}={}", e.name, e.value.unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                println!(
                    "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                    info.name,
                    info.partitions.len(),
                    rf,
                    configs
                );
                let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                for p in &info.partitions {
                    println!(
                        "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                        info.name,
                        p.partition,
                        p.leader,
                        ids(&p.replicas),
                        ids(&p.isr)
                    );
                }
            }
        }
    }
    Ok(())
}

async fn groups(admin: &Admin, cmd: Groups) -> anyhow::Result<()> {
    match cmd {
        Groups::List => {
            for g in admin.list_groups().await? {
                println!("{}", g.group_id);
            }
        }
        Groups::Describe { group } => {
            let d = admin.describe_group(&group).await?;
            if d.state == "Dead" {
                bail!("consumer group '{group}' does not exist");
            }
            println!(
                "Group: {}\tState: {}\tProtocol: {}\tMembers: {}",
                d.group_id,
                d.state,
                if d.protocol.is_empty() {
                    "-"
                } else {
                    &d.protocol
                },
                d.members.len()
            );
            if d.members.is_empty() {
                println!("Consumer group '{group}' has no active members.");
            }
            println!();
            let lag = admin.group_lag(&group).await?;
            let dash = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            println!(
                "{:<20} {:<20} {:>9} {:>15} {:>15} {:>8}  {:<45} {:<15} CLIENT-ID",
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST"
            );
            for l in &lag {
                let member = l
                    .member_id
                    .as_ref()
                    .and_then(|id| d.members.iter().find(|m| &m.member_id == id));
                println!(
                    "{:<20} {:<20} {:>9} {:>15} {:>15} {:>8}  {:<45} {:<15} {}",
                    group,
                    l.partition.topic,
                    l.partition.partition,
                    dash(l.committed),
                    l.log_end,
                    dash(l.lag),
                    member.map_or("-", |m| m.member_id.as_str()),
                    member.map_or("-", |m| m.client_host.as_str()),
                    member.map_or("-", |m| m.client_id.as_str()),
                );
            }
            if !d.members.is_empty() {
                println!();
                println!(
                    "{:<45} {:<15} {:<20} {:>12}  ASSIGNMENT",
                    "MEMBER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
                );
                for m in &d.members {
                    let assignment: Vec<String> =
                        m.assignment.iter().map(ToString::to_string).collect();
                    println!(
                        "{:<45} {:<15} {:<20} {:>12}  {}",
                        m.member_id,
                        m.client_host,
                        m.client_id,
                        m.assignment.len(),
                        assignment.join(",")
                    );
                }
            }
        }
    }
    Ok(())
}
