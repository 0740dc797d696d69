//! `klog-broker`: starts a single-node Kafka-compatible broker.
//!
//! With no arguments it stores data in `./klog-data` and listens on
//! 127.0.0.1:9092. `--config server.properties` reads Kafka's configuration names;
//! `--set key=value` overrides any key. SIGTERM or SIGINT stops it cleanly: no new
//! connections, in-flight requests finish, logs are flushed and marked clean.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use klog_broker::alloc::BrokerAllocator;
use klog_broker::config::parse_properties;
use klog_broker::{Broker, BrokerConfig};

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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
    let broker = Broker::open(config).context("opening the log dirs")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "klog-broker listening");
        klog_broker::server::run(broker.clone(), listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    broker.shutdown().context("flushing logs at shutdown")?;
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
