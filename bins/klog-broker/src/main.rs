//! `klog-broker`: starts a klog node: a Kafka-compatible broker and, by default,
//! a controller of the metadata quorum (`process.roles=broker,controller`).
//!
//! With no arguments it is a one-node cluster: data in `./klog-data`, listening on
//! 127.0.0.1:9092. `--config server.properties` reads Kafka's configuration names;
//! `--set key=value` overrides any key. SIGTERM or SIGINT stops it cleanly: no new
//! connections, in-flight requests finish, logs are flushed and marked clean.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use klog_broker::BrokerConfig;
use klog_broker::alloc::BrokerAllocator;
use klog_broker::config::parse_properties;
use klog_broker::node::Node;

#[global_allocator]
static ALLOC: BrokerAllocator = BrokerAllocator;

/// A distributed commit log that speaks the Kafka protocol.
#[derive(Debug, Parser)]
#[command(name = "klog-broker", version)]
struct Args {
    /// A Kafka `server.properties` file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key (repeatable), e.g. `--set log.dirs=/tmp/x`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let mut pairs = Vec::new();
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        pairs.extend(parse_properties(&text));
    }
    for s in &args.set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected KEY=VALUE"))?;
        pairs.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let (config, unknown) = BrokerConfig::from_pairs(pairs)?;
    for key in unknown {
        tracing::warn!(key, "unknown configuration key ignored");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listen = config.listener;
    let serves_clients = config.cluster.roles.broker;
    runtime.block_on(async {
        // Bind first, so that a port in use fails the start before anything else.
        let listener = if serves_clients {
            Some(
                tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?,
            )
        } else {
            None
        };
        let node = Node::start(config).await.context("starting the node")?;
        match listener {
            Some(listener) => {
                tracing::info!(address = %listener.local_addr()?, "klog-broker listening");
                // SIGTERM: a controlled shutdown while still serving (leaderships
                // move to other brokers first), then stop accepting.
                let stopping = async {
                    shutdown_signal().await;
                    node.controlled_shutdown().await;
                };
                klog_broker::net::run(node.broker().clone(), listener, stopping).await?;
            }
            None => {
                tracing::info!("controller-only node running");
                shutdown_signal().await;
            }
        }
        node.shutdown().await.context("flushing logs at shutdown")?;
        anyhow::Ok(())
    })?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
