//! `klog-consumer`: Kafka's console consumer and consumer perf test, for klog (or
//! any Kafka broker). Without `--group` it assigns partitions itself; with
//! `--group G` it joins consumer group G, shares the topic's partitions with the
//! group's other members and commits its offsets (auto-commit, and on exit).
//!
//! ```text
//! klog-consumer --bootstrap-server HOST:PORT --topic T [--from-beginning]
//!     [--group G] [--consumer-property KEY=VALUE]...
//!     [--partition N [--offset O|earliest|latest]] [--max-messages N]
//!     [--property print.key=true] [--property print.timestamp=true]
//! klog-consumer perf --bootstrap-server B --topic T --messages N
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use klog_client::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, GroupConsumer, Offset,
    TopicPartition,
};

#[derive(Parser, Debug)]
#[command(
    name = "klog-consumer",
    version,
    about = "Prints the records of a topic, alone or as a member of a consumer group",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    console: ConsoleArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Consumer throughput test (like kafka-consumer-perf-test).
    Perf(PerfArgs),
}

#[derive(Args, Debug)]
struct Common {
    /// Broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(long, required = true)]
    bootstrap_server: Option<String>,
    /// Topic to read.
    #[arg(long, required = true)]
    topic: Option<String>,
    /// Consumer config KEY=VALUE (max.poll.records, fetch.min.bytes,
    /// fetch.max.wait.ms, fetch.max.bytes, max.partition.fetch.bytes, check.crcs,
    /// client.id; with --group also group.instance.id, session.timeout.ms,
    /// heartbeat.interval.ms, max.poll.interval.ms, enable.auto.commit,
    /// auto.commit.interval.ms, partition.assignment.strategy, auto.offset.reset).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_property: Vec<String>,
}

#[derive(Args, Debug)]
struct ConsoleArgs {
    #[command(flatten)]
    common: Common,
    /// Start at the oldest record instead of the end (with --group: for partitions
    /// the group has no committed offset for, i.e. auto.offset.reset=earliest).
    #[arg(long)]
    from_beginning: bool,
    /// Consume as a member of this consumer group.
    #[arg(long, conflicts_with = "partition")]
    group: Option<String>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// With --partition: the offset to start at (a number, earliest or latest).
    #[arg(long, requires = "partition")]
    offset: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Formatter property KEY=VALUE: print.key, print.timestamp, print.partition,
    /// print.offset (true/false), key.separator.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
}

#[derive(Args, Debug)]
struct PerfArgs {
    #[command(flatten)]
    common: Common,
    /// Number of records to consume.
    #[arg(long)]
    messages: u64,
    /// Give up when no record arrives for this long.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
}

fn split_kv(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('=')
        .with_context(|| format!("{s:?}: expected KEY=VALUE"))
}

/// `KEY=VALUE` settings left for the group consumer.
type Properties = Vec<(String, String)>;

/// The consumer config from --consumer-property, the topic, and the properties that
/// are not plain consumer settings (group settings, for --group).
fn consumer_config(c: &Common) -> anyhow::Result<(ConsumerConfig, String, Properties)> {
    let bootstrap = c.bootstrap_server.clone().context("--bootstrap-server")?;
    let topic = c.topic.clone().context("--topic")?;
    let mut config = ConsumerConfig::new(&bootstrap);
    config.client.client_id = "klog-consumer".to_owned();
    let mut rest = Vec::new();
    for p in &c.consumer_property {
        let (k, v) = split_kv(p)?;
        let num = || v.parse::<i64>().with_context(|| format!("{k}={v}"));
        match k {
            "max.poll.records" => config.max_poll_records = num()? as usize,
            "fetch.min.bytes" => config.fetch_min_bytes = num()? as i32,
            "fetch.max.wait.ms" => config.fetch_max_wait = Duration::from_millis(num()? as u64),
            "fetch.max.bytes" => config.fetch_max_bytes = num()? as i32,
            "max.partition.fetch.bytes" => config.max_partition_fetch_bytes = num()? as i32,
            "check.crcs" => config.check_crcs = v.parse().with_context(|| format!("{k}={v}"))?,
            "client.id" => config.client.client_id = v.to_owned(),
            _ => rest.push((k.to_owned(), v.to_owned())),
        }
    }
    Ok((config, topic, rest))
}

fn no_group_properties(rest: &[(String, String)]) -> anyhow::Result<()> {
    match rest.first() {
        Some((k, _)) => bail!("unknown consumer property {k} (group settings need --group)"),
        None => Ok(()),
    }
}

/// Where records come from: assigned partitions, or a group membership.
enum Source {
    Plain(Box<Consumer>),
    Group(Box<GroupConsumer>),
}

impl Source {
    async fn poll(&mut self, wait: Duration) -> anyhow::Result<Vec<ConsumerRecord>> {
        Ok(match self {
            Self::Plain(c) => c.poll(wait).await?,
            Self::Group(g) => g.poll(wait).await?,
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Self::Group(g) = self {
            g.close().await?;
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Perf(args)) => rt.block_on(perf(args)),
        None => rt.block_on(console(cli.console)),
    }
}

async fn console(args: ConsoleArgs) -> anyhow::Result<()> {
    let (mut config, topic, rest) = consumer_config(&args.common)?;
    config.auto_offset_reset = if args.from_beginning {
        AutoOffsetReset::Earliest
    } else {
        AutoOffsetReset::Latest
    };
    let (mut print_key, mut print_ts, mut print_partition, mut print_offset) =
        (false, false, false, false);
    let mut separator = "\t".to_owned();
    for p in &args.property {
        let (k, v) = split_kv(p)?;
        let flag = || v.parse::<bool>().with_context(|| format!("{k}={v}"));
        match k {
            "print.key" => print_key = flag()?,
            "print.timestamp" => print_ts = flag()?,
            "print.partition" => print_partition = flag()?,
            "print.offset" => print_offset = flag()?,
            "key.separator" => separator = v.to_owned(),
            _ => bail!("unknown property {k}"),
        }
    }
    let mut source = match &args.group {
        Some(group) => {
            let mut g = GroupConfig::new(
                &args.common.bootstrap_server.clone().unwrap_or_default(),
                group,
            );
            g.consumer = config;
            for (k, v) in &rest {
                g.set(k, v)?;
            }
            let mut consumer = GroupConsumer::new(g)?;
            consumer.subscribe([topic.clone()]);
            Source::Group(Box::new(consumer))
        }
        None => {
            no_group_properties(&rest)?;
            Source::Plain(Box::new(plain_consumer(config, &topic, &args).await?))
        }
    };

    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last = Instant::now();
    let mut count = 0u64;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while args.max_messages.is_none_or(|m| count < m) {
        let wait = idle_limit.map_or(Duration::from_secs(1), |l| {
            l.saturating_sub(last.elapsed())
                .max(Duration::from_millis(1))
        });
        let records = source.poll(wait).await?;
        if records.is_empty() {
            out.flush()?;
            if idle_limit.is_some_and(|l| last.elapsed() >= l) {
                break;
            }
            continue;
        }
        last = Instant::now();
        for r in records {
            if args.max_messages.is_some_and(|m| count >= m) {
                break;
            }
            if print_ts {
                write!(out, "CreateTime:{}{separator}", r.timestamp)?;
            }
            if print_partition {
                write!(out, "Partition:{}{separator}", r.partition)?;
            }
            if print_offset {
                write!(out, "Offset:{}{separator}", r.offset)?;
            }
            if print_key {
                match &r.key {
                    Some(k) => out.write_all(k)?,
                    None => out.write_all(b"null")?,
                }
                out.write_all(separator.as_bytes())?;
            }
            match &r.value {
                Some(v) => out.write_all(v)?,
                None => out.write_all(b"null")?,
            }
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    out.flush()?;
    source.close().await?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

/// A consumer assigned the partitions --partition/--offset (or the whole topic) ask for.
async fn plain_consumer(
    config: ConsumerConfig,
    topic: &str,
    args: &ConsoleArgs,
) -> anyhow::Result<Consumer> {
    let mut consumer = Consumer::new(config)?;
    match args.partition {
        Some(p) => {
            let tp = TopicPartition::new(topic, p);
            consumer.assign([tp.clone()]);
            let start = match args.offset.as_deref() {
                None if args.from_beginning => Offset::Beginning,
                None | Some("latest") => Offset::End,
                Some("earliest") => Offset::Beginning,
                Some(o) => Offset::At(o.parse().with_context(|| format!("--offset {o}"))?),
            };
            consumer.seek(&tp, start)?;
        }
        None => {
            consumer
                .assign_topic(topic, Duration::from_secs(30))
                .await?;
        }
    }
    Ok(consumer)
}

async fn perf(args: PerfArgs) -> anyhow::Result<()> {
    let (mut config, topic, rest) = consumer_config(&args.common)?;
    no_group_properties(&rest)?;
    config.auto_offset_reset = AutoOffsetReset::Earliest;
    let mut consumer = Consumer::new(config)?;
    consumer
        .assign_topic(&topic, Duration::from_secs(30))
        .await?;
    consumer.seek_to_beginning();
    let interval = Duration::from_secs(args.reporting_interval.max(1));
    let timeout = Duration::from_millis(args.timeout);
    let start = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut window_start, mut window_count, mut window_bytes) = (start, 0u64, 0u64);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    while count < args.messages {
        let records = consumer.poll(timeout).await?;
        if records.is_empty() {
            bail!(
                "no records for {} ms after {count} of {}",
                args.timeout,
                args.messages
            );
        }
        for r in &records {
            let size =
                r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len());
            bytes += size as u64;
            window_bytes += size as u64;
        }
        count += records.len() as u64;
        window_count += records.len() as u64;
        let w = window_start.elapsed();
        if w >= interval {
            let s = w.as_secs_f64();
            println!(
                "{window_count} records received, {:.1} records/sec ({:.2} MiB/sec).",
                window_count as f64 / s,
                mib(window_bytes) / s
            );
            (window_start, window_count, window_bytes) = (Instant::now(), 0, 0);
        }
    }
    let s = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{count} records received, {:.1} records/sec ({:.2} MiB/sec), {:.2} MiB in {:.2} s.",
        count as f64 / s,
        mib(bytes) / s,
        mib(bytes),
        s
    );
    Ok(())
}
