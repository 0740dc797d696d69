//! `klog-admin`: topic administration for klog (or any Kafka broker), like Kafka's
//! `kafka-topics`.
//!
//! ```text
//! klog-admin --bootstrap-server HOST:PORT topics create --topic T [--partitions N]
//!     [--replication-factor R] [--config key=value]...
//! klog-admin --bootstrap-server HOST:PORT topics delete --topic T
//! klog-admin --bootstrap-server HOST:PORT topics list
//! klog-admin --bootstrap-server HOST:PORT topics describe [--topic T]
//! ```

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use klog_client::error::ResponseError;
use klog_client::{Admin, AdminError, ClientConfig, ConfigResource, NewTopic};

#[derive(Parser, Debug)]
#[command(name = "klog-admin", version, about = "Administers topics")]
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
    let Command::Topics(cmd) = cli.command;
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
