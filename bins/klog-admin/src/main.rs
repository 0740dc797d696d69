//! `klog-admin`: topic, config, record, cluster and consumer-group administration
//! for klog (or any Kafka broker), like Kafka's `kafka-topics`, `kafka-configs`,
//! `kafka-delete-records`, `kafka-get-offsets`, `kafka-log-dirs`, `kafka-cluster`,
//! `kafka-leader-election`, `kafka-metadata-quorum` and `kafka-consumer-groups`.
//!
//! ```text
//! klog-admin --bootstrap-server HOST:PORT topics create --topic T [--partitions N]
//!     [--replication-factor R] [--config key=value]...
//! klog-admin --bootstrap-server HOST:PORT topics delete --topic T
//! klog-admin --bootstrap-server HOST:PORT topics list
//! klog-admin --bootstrap-server HOST:PORT topics describe [--topic T]
//!     [--under-replicated-partitions | --under-min-isr-partitions | --unavailable-partitions]
//! klog-admin --bootstrap-server HOST:PORT leader-election --election-type preferred|unclean
//!     (--all-topic-partitions | --topic T [--partition P])
//! klog-admin --bootstrap-server HOST:PORT groups list
//! klog-admin --bootstrap-server HOST:PORT groups describe --group G
//! klog-admin --bootstrap-server HOST:PORT groups offsets --group G
//! klog-admin --bootstrap-server HOST:PORT topics add-partitions --topic T --partitions N
//!     [--validate-only]
//! klog-admin --bootstrap-server HOST:PORT configs describe (--topic T | --broker N)
//!     [--all] [--synonyms]
//! klog-admin --bootstrap-server HOST:PORT configs alter --topic T [--set K=V]...
//!     [--delete K]... [--append K=V]... [--subtract K=V]... [--validate-only]
//! klog-admin --bootstrap-server HOST:PORT records delete --topic T --partition P
//!     --offset O
//! klog-admin --bootstrap-server HOST:PORT offsets --topic T [--time earliest|latest|MS]
//! klog-admin --bootstrap-server HOST:PORT log-dirs describe [--topic T] [--broker N]
//! klog-admin --bootstrap-server HOST:PORT cluster describe
//! klog-admin --bootstrap-server HOST:PORT quorum describe [--status | --replication]
//! ```

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use klog_client::error::ResponseError;
use klog_client::{
    Admin, AdminError, AlterConfigOp, ClientConfig, ConfigEntry, ConfigResource, ConfigSource,
    ElectionType, NewPartitions, NewTopic, OffsetSpec, TopicPartition,
};

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
    /// Describe and alter topic and broker configs (like kafka-configs).
    #[command(subcommand)]
    Configs(Configs),
    /// Delete records below an offset (like kafka-delete-records).
    #[command(subcommand)]
    Records(Records),
    /// Print each partition's offset at a time as TOPIC:PARTITION:OFFSET (like
    /// kafka-get-offsets); -1 when no record is at or after the time.
    Offsets {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// earliest, latest, or a timestamp in ms (-2 and -1 mean earliest and latest).
        #[arg(long, default_value = "latest", allow_negative_numbers = true)]
        time: String,
    },
    /// Describe brokers' log directories (like kafka-log-dirs).
    #[command(subcommand)]
    LogDirs(LogDirs),
    /// Describe the cluster (like kafka-cluster).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Describe the metadata quorum (like kafka-metadata-quorum).
    #[command(subcommand)]
    Quorum(QuorumCmd),
    /// Elect partition leaders (like kafka-leader-election): the preferred
    /// replica where it is alive and in sync, or (unclean) any live replica of a
    /// partition that has no leader.
    LeaderElection {
        /// preferred or unclean.
        #[arg(long, value_parser = ["preferred", "unclean", "PREFERRED", "UNCLEAN"])]
        election_type: String,
        /// Every partition of every topic.
        #[arg(long, conflicts_with_all = ["topic", "partition"], required_unless_present = "topic")]
        all_topic_partitions: bool,
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
    },
}

#[derive(Subcommand, Debug)]
enum Configs {
    /// Show configs with their source and read-only/sensitive flags; without --all
    /// only the dynamically set ones (topic overrides).
    Describe {
        /// A topic's configs.
        #[arg(long, conflicts_with = "broker", required_unless_present = "broker")]
        topic: Option<String>,
        /// A broker's configs, by id.
        #[arg(long)]
        broker: Option<i32>,
        /// Every config, defaults and static broker configs included.
        #[arg(long)]
        all: bool,
        /// Show each config's synonyms (the levels it can be set at).
        #[arg(long)]
        synonyms: bool,
    },
    /// Change a topic's configs with IncrementalAlterConfigs.
    Alter {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Set KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove the override of KEY (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        /// Add VALUE to the list config KEY (repeatable).
        #[arg(long = "append", value_name = "KEY=VALUE")]
        append: Vec<String>,
        /// Remove VALUE from the list config KEY (repeatable).
        #[arg(long = "subtract", value_name = "KEY=VALUE")]
        subtract: Vec<String>,
        /// Only check the change; apply nothing.
        #[arg(long)]
        validate_only: bool,
    },
}

#[derive(Subcommand, Debug)]
enum Records {
    /// Move a partition's log start offset forward, deleting the records below it.
    Delete {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// Delete records below this offset (-1: below the high watermark).
        #[arg(long, allow_negative_numbers = true)]
        offset: i64,
    },
}

#[derive(Subcommand, Debug)]
enum LogDirs {
    /// Each log directory with the size of every partition in it.
    Describe {
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this broker (default: every broker).
        #[arg(long)]
        broker: Option<i32>,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCmd {
    /// Cluster id, controller and brokers.
    Describe,
}

#[derive(Subcommand, Debug)]
enum QuorumCmd {
    /// The quorum's leader, epoch, high watermark, voters and observers
    /// (`--status`, the default), or each member's progress (`--replication`).
    Describe {
        /// Leader, epoch, high watermark, follower lag, voters and observers.
        #[arg(long, conflicts_with = "replication")]
        status: bool,
        /// One line per voter and observer: log end offset, lag, role.
        #[arg(long)]
        replication: bool,
    },
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
    /// The group's committed offsets with their leader epochs and metadata strings.
    Offsets {
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
    /// Grow a topic to a partition count (never shrinks).
    AddPartitions {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// The partition count wanted (the total).
        #[arg(long)]
        partitions: i32,
        /// Only check the change; create nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Describe topics: partitions, leaders, replicas, ISR and non-default configs.
    /// With a filter, only the partition lines that match it.
    Describe {
        /// Topic name (all topics if omitted).
        #[arg(long)]
        topic: Option<String>,
        /// Only partitions whose ISR is smaller than their replica list.
        #[arg(long, group = "filter")]
        under_replicated_partitions: bool,
        /// Only partitions whose ISR is smaller than the topic's min.insync.replicas.
        #[arg(long, group = "filter")]
        under_min_isr_partitions: bool,
        /// Only partitions without a live leader.
        #[arg(long, group = "filter")]
        unavailable_partitions: bool,
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
        Command::Configs(cmd) => return configs(&admin, cmd).await,
        Command::Records(cmd) => return records(&admin, cmd).await,
        Command::Offsets { topic, time } => return offsets(&admin, &topic, &time).await,
        Command::LogDirs(cmd) => return log_dirs(&admin, cmd).await,
        Command::Cluster(ClusterCmd::Describe) => return cluster(&admin).await,
        Command::Quorum(QuorumCmd::Describe {
            status: _,
            replication,
        }) => return quorum(&admin, replication).await,
        Command::LeaderElection {
            election_type,
            all_topic_partitions: _,
            topic,
            partition,
        } => return leader_election(&admin, &election_type, topic, partition).await,
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
        Topics::AddPartitions {
            topic,
            partitions,
            validate_only,
        } => {
            let results = admin
                .create_partitions(
                    &[NewPartitions::increase_to(topic.clone(), partitions)],
                    validate_only,
                )
                .await?;
            results.into_iter().next().context("no result")??;
            if validate_only {
                println!(
                    "Validated increasing {topic} to {partitions} partitions (nothing changed)."
                );
            } else {
                println!("Increased the partition count of {topic} to {partitions}.");
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
        Topics::Describe {
            topic,
            under_replicated_partitions,
            under_min_isr_partitions,
            unavailable_partitions,
        } => {
            let filtered =
                under_replicated_partitions || under_min_isr_partitions || unavailable_partitions;
            let names = match topic {
                Some(t) => vec![t],
                None => admin.list_topics().await?,
            };
            let live: std::collections::BTreeSet<i32> =
                admin.brokers().await?.iter().map(|b| b.node_id).collect();
            for info in admin.describe_topics(&names).await? {
                let rf = info.partitions.first().map_or(0, |p| p.replicas.len());
                let entries = admin
                    .describe_configs(ConfigResource::Topic(&info.name), None)
                    .await
                    .unwrap_or_default();
                let min_isr = entries
                    .iter()
                    .find(|e| e.name == "min.insync.replicas")
                    .and_then(|e| e.value.as_deref()?.parse::<usize>().ok())
                    .unwrap_or(1);
                if !filtered {
                    let configs = entries
                        .iter()
                        .filter(|e| !e.is_default)
                        .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",");
                    println!(
                        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                        info.name,
                        info.partitions.len(),
                        rf,
                        configs
                    );
                }
                let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                for p in &info.partitions {
                    let shown = !filtered
                        || (under_replicated_partitions && p.isr.len() < p.replicas.len())
                        || (under_min_isr_partitions && p.isr.len() < min_isr)
                        || (unavailable_partitions && (p.leader < 0 || !live.contains(&p.leader)));
                    if !shown {
                        continue;
                    }
                    let leader = if p.leader < 0 {
                        "none".to_owned()
                    } else {
                        p.leader.to_string()
                    };
                    println!(
                        "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                        info.name,
                        p.partition,
                        leader,
                        ids(&p.replicas),
                        ids(&p.isr)
                    );
                }
            }
        }
    }
    Ok(())
}

fn key_value(flag: &str, kv: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = kv
        .split_once('=')
        .with_context(|| format!("{flag} {kv:?}: expected KEY=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// One config line as kafka-configs.sh prints it.
fn config_line(e: &ConfigEntry, synonyms: bool) -> String {
    let value = if e.is_sensitive {
        "null".to_owned()
    } else {
        e.value.clone().unwrap_or_else(|| "null".to_owned())
    };
    let mut line = format!(
        "  {}={} source={} read-only={} sensitive={}",
        e.name, value, e.source, e.read_only, e.is_sensitive
    );
    if synonyms {
        let list: Vec<String> = e
            .synonyms
            .iter()
            .map(|s| {
                format!(
                    "{}:{}={}",
                    s.source,
                    s.name,
                    s.value.as_deref().unwrap_or("null")
                )
            })
            .collect();
        line.push_str(&format!(" synonyms={{{}}}", list.join(", ")));
    }
    line
}

async fn configs(admin: &Admin, cmd: Configs) -> anyhow::Result<()> {
    match cmd {
        Configs::Describe {
            topic,
            broker,
            all,
            synonyms,
        } => {
            let resource = match (&topic, broker) {
                (Some(t), _) => ConfigResource::Topic(t),
                (None, Some(b)) => ConfigResource::Broker(b),
                (None, None) => bail!("give --topic or --broker"),
            };
            let entries = admin
                .describe_configs_with(resource, None, synonyms)
                .await?;
            println!(
                "{} configs for {resource} are:",
                if all { "All" } else { "Dynamic" }
            );
            for e in &entries {
                // As kafka-configs.sh: without --all, only what was set at run time.
                let dynamic =
                    !matches!(e.source, ConfigSource::Default | ConfigSource::StaticBroker);
                if all || dynamic {
                    println!("{}", config_line(e, synonyms));
                }
            }
        }
        Configs::Alter {
            topic,
            set,
            delete,
            append,
            subtract,
            validate_only,
        } => {
            let mut ops = Vec::new();
            for kv in &set {
                let (k, v) = key_value("--set", kv)?;
                ops.push(AlterConfigOp::set(k, v));
            }
            ops.extend(delete.iter().map(AlterConfigOp::delete));
            for kv in &append {
                let (k, v) = key_value("--append", kv)?;
                ops.push(AlterConfigOp::append(k, v));
            }
            for kv in &subtract {
                let (k, v) = key_value("--subtract", kv)?;
                ops.push(AlterConfigOp::subtract(k, v));
            }
            if ops.is_empty() {
                bail!("nothing to change: give --set, --delete, --append or --subtract");
            }
            admin
                .incremental_alter_configs(ConfigResource::Topic(&topic), &ops, validate_only)
                .await?;
            if validate_only {
                println!("Validated config changes for topic {topic} (nothing changed).");
            } else {
                println!("Completed updating config for topic {topic}.");
            }
        }
    }
    Ok(())
}

async fn records(admin: &Admin, cmd: Records) -> anyhow::Result<()> {
    match cmd {
        Records::Delete {
            topic,
            partition,
            offset,
        } => {
            let tp = TopicPartition::new(topic, partition);
            let results = admin.delete_records(&[(tp, offset)]).await?;
            println!("Records delete operation completed:");
            for (tp, r) in results {
                match r {
                    Ok(low) => println!("partition: {tp}\tlow_watermark: {low}"),
                    Err(e) => bail!("partition: {tp}\terror: {e}"),
                }
            }
        }
    }
    Ok(())
}

fn offset_spec(time: &str) -> anyhow::Result<OffsetSpec> {
    Ok(match time {
        "earliest" | "-2" => OffsetSpec::Earliest,
        "latest" | "-1" => OffsetSpec::Latest,
        ms => {
            let t: i64 = ms
                .parse()
                .with_context(|| format!("--time {ms:?}: expected earliest, latest or ms"))?;
            if t < 0 {
                bail!("--time {t}: a timestamp cannot be negative");
            }
            OffsetSpec::Timestamp(t)
        }
    })
}

async fn offsets(admin: &Admin, topic: &str, time: &str) -> anyhow::Result<()> {
    let spec = offset_spec(time)?;
    let info = admin
        .describe_topics(&[topic.to_owned()])
        .await?
        .into_iter()
        .next()
        .context("no metadata")?;
    let parts: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    for (tp, r) in admin.list_offsets(&parts, spec).await? {
        let listed = r?;
        println!(
            "{}:{}:{}",
            tp.topic,
            tp.partition,
            listed.offset.unwrap_or(-1)
        );
    }
    Ok(())
}

async fn log_dirs(admin: &Admin, cmd: LogDirs) -> anyhow::Result<()> {
    let LogDirs::Describe { topic, broker } = cmd;
    let brokers: Vec<i32> = match broker {
        Some(b) => vec![b],
        None => admin.brokers().await?.iter().map(|b| b.node_id).collect(),
    };
    let topics = topic.map(|t| vec![t]);
    println!(
        "{:>6}  {:<40} {:<20} {:>9} {:>12} {:>10}  IS-FUTURE",
        "BROKER", "LOG-DIR", "TOPIC", "PARTITION", "SIZE", "OFFSET-LAG"
    );
    for b in brokers {
        for dir in admin.describe_log_dirs(b, topics.as_deref()).await? {
            if let Some(e) = dir.error {
                println!("{b:>6}  {:<40} error: {e}", dir.path);
                continue;
            }
            for r in &dir.replicas {
                println!(
                    "{:>6}  {:<40} {:<20} {:>9} {:>12} {:>10}  {}",
                    b,
                    dir.path,
                    r.partition.topic,
                    r.partition.partition,
                    r.size,
                    r.offset_lag,
                    r.is_future
                );
            }
        }
    }
    Ok(())
}

/// `quorum describe`, in kafka-metadata-quorum's format.
async fn quorum(admin: &Admin, replication: bool) -> anyhow::Result<()> {
    let q = admin.describe_quorum().await?;
    let leader = q.leader_id.unwrap_or(-1);
    let lag = |r: &klog_client::QuorumReplica| {
        if r.log_end_offset < 0 {
            -1
        } else {
            (q.high_watermark - r.log_end_offset).max(0)
        }
    };
    let ts = |t: Option<i64>| t.unwrap_or(-1);
    if replication {
        println!(
            "{:<8}{:<14}{:<8}{:<20}{:<23}STATUS",
            "NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp"
        );
        let members = q
            .voters
            .iter()
            .map(|r| {
                (
                    r,
                    if r.node_id == leader {
                        "Leader"
                    } else {
                        "Follower"
                    },
                )
            })
            .chain(q.observers.iter().map(|r| (r, "Observer")));
        for (r, role) in members {
            println!(
                "{:<8}{:<14}{:<8}{:<20}{:<23}{role}",
                r.node_id,
                r.log_end_offset,
                lag(r),
                ts(r.last_fetch_timestamp),
                ts(r.last_caught_up_timestamp),
            );
        }
        return Ok(());
    }
    let cluster = admin.describe_cluster().await?;
    let ids = |rs: &[klog_client::QuorumReplica]| {
        rs.iter()
            .map(|r| r.node_id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let max_lag = q
        .voters
        .iter()
        .filter(|r| r.node_id != leader)
        .map(lag)
        .max()
        .unwrap_or(0);
    println!(
        "ClusterId:              {}",
        cluster.cluster_id.as_deref().unwrap_or("-")
    );
    println!("LeaderId:               {leader}");
    println!("LeaderEpoch:            {}", q.leader_epoch);
    println!("HighWatermark:          {}", q.high_watermark);
    println!("MaxFollowerLag:         {max_lag}");
    println!("CurrentVoters:          [{}]", ids(&q.voters));
    println!("CurrentObservers:       [{}]", ids(&q.observers));
    if !q.voter_endpoints.is_empty() {
        let endpoints: Vec<String> = q
            .voter_endpoints
            .iter()
            .map(|(id, host, port)| format!("{id}@{host}:{port}"))
            .collect();
        println!("VoterEndpoints:         [{}]", endpoints.join(","));
    }
    Ok(())
}

async fn cluster(admin: &Admin) -> anyhow::Result<()> {
    let c = admin.describe_cluster().await?;
    println!("Cluster ID: {}", c.cluster_id.as_deref().unwrap_or("-"));
    println!(
        "Controller: {}",
        c.controller_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string())
    );
    println!("{:>6}  {:<30} {:>6}  RACK", "ID", "HOST", "PORT");
    for b in &c.brokers {
        println!(
            "{:>6}  {:<30} {:>6}  {}",
            b.node_id,
            b.host,
            b.port,
            b.rack.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

async fn groups(admin: &Admin, cmd: Groups) -> anyhow::Result<()> {
    match cmd {
        Groups::Offsets { group } => {
            println!(
                "{:<20} {:<20} {:>9} {:>15} {:>12}  METADATA",
                "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LEADER-EPOCH"
            );
            for c in admin.committed_offsets(&group).await? {
                println!(
                    "{:<20} {:<20} {:>9} {:>15} {:>12}  {}",
                    group,
                    c.partition.topic,
                    c.partition.partition,
                    c.offset,
                    c.leader_epoch
                        .map_or_else(|| "-".to_owned(), |e| e.to_string()),
                    c.metadata.as_deref().unwrap_or("-")
                );
            }
        }
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

/// `leader-election`: prints the partitions elected and those whose leader was
/// already right, as kafka-leader-election does; fails if any partition failed.
async fn leader_election(
    admin: &Admin,
    election_type: &str,
    topic: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    let (election, label) = if election_type.eq_ignore_ascii_case("unclean") {
        (ElectionType::Unclean, "UNCLEAN")
    } else {
        (ElectionType::Preferred, "PREFERRED")
    };
    let partitions: Option<Vec<TopicPartition>> = match (topic, partition) {
        (None, _) => None,
        (Some(t), Some(p)) => Some(vec![TopicPartition::new(t, p)]),
        (Some(t), None) => {
            let info = admin.describe_topics(std::slice::from_ref(&t)).await?;
            let info = info.first().context("no metadata for the topic")?;
            if info.error_code != 0 {
                bail!(
                    "{t}: {}",
                    ResponseError::try_from_code(info.error_code)
                        .map_or_else(String::new, |e| e.to_string())
                );
            }
            Some(
                info.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.clone(), p.partition))
                    .collect(),
            )
        }
    };
    let results = admin.elect_leaders(election, partitions.as_deref()).await?;
    let name = |tp: &TopicPartition| format!("{}-{}", tp.topic, tp.partition);
    let elected: Vec<String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(true)))
        .map(|(tp, _)| name(tp))
        .collect();
    let already: Vec<String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(false)))
        .map(|(tp, _)| name(tp))
        .collect();
    if !elected.is_empty() {
        println!(
            "Successfully completed leader election ({label}) for partitions {}",
            elected.join(", ")
        );
    }
    if !already.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            already.join(", ")
        );
    }
    let mut failed = 0;
    for (tp, r) in &results {
        if let Err(e) = r {
            failed += 1;
            eprintln!(
                "Error completing leader election ({label}) for partition: {}: {e}",
                name(tp)
            );
        }
    }
    if failed > 0 {
        bail!("{failed} partition(s) failed leader election");
    }
    Ok(())
}
