//! `klog-producer`: Kafka's console producer and producer perf test, for klog (or
//! any Kafka broker).
//!
//! ```text
//! klog-producer --bootstrap-server HOST:PORT --topic T [--property parse.key=true
//!     --property key.separator=:] [--compression C] [--acks A]     < lines
//! klog-producer perf --bootstrap-server B --topic T --num-records N --record-size S
//!     --throughput -1 [--acks A] [--compression C] [--batch-size B] [--linger-ms L]
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use klog_client::{
    Acks, Bytes, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(
    name = "klog-producer",
    version,
    about = "Reads records from stdin, one per line, and produces them to a topic",
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
    /// Producer throughput and latency test (like kafka-producer-perf-test).
    Perf(PerfArgs),
}

/// Settings shared by the console and perf modes.
#[derive(Args, Debug, Clone)]
struct ProducerArgs {
    /// Broker(s) to bootstrap from: HOST:PORT[,HOST:PORT...].
    #[arg(long, required = true)]
    bootstrap_server: Option<String>,
    /// Topic to produce to.
    #[arg(long, required = true)]
    topic: Option<String>,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// compression.type: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// batch.size in bytes.
    #[arg(long)]
    batch_size: Option<usize>,
    /// linger.ms.
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Producer config KEY=VALUE (enable.idempotence, buffer.memory,
    /// max.in.flight.requests.per.connection, max.request.size, request.timeout.ms,
    /// delivery.timeout.ms, client.id).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    producer_property: Vec<String>,
}

#[derive(Args, Debug)]
struct ConsoleArgs {
    #[command(flatten)]
    producer: ProducerArgs,
    /// Line reader property KEY=VALUE: parse.key=true, key.separator=SEP.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
}

#[derive(Args, Debug)]
struct PerfArgs {
    #[command(flatten)]
    producer: ProducerArgs,
    /// Number of records to send.
    #[arg(long)]
    num_records: u64,
    /// Value size in bytes.
    #[arg(long)]
    record_size: usize,
    /// Records per second to aim for; -1 for no limit.
    #[arg(long, allow_hyphen_values = true)]
    throughput: f64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
}

fn split_kv(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('=')
        .with_context(|| format!("{s:?}: expected KEY=VALUE"))
}

fn producer_config(args: &ProducerArgs) -> anyhow::Result<(ProducerConfig, String)> {
    let bootstrap = args
        .bootstrap_server
        .clone()
        .context("--bootstrap-server")?;
    let topic = args.topic.clone().context("--topic")?;
    let mut c = ProducerConfig::new(&bootstrap);
    c.client.client_id = "klog-producer".to_owned();
    c.acks = Acks::parse(&args.acks).with_context(|| format!("--acks {}", args.acks))?;
    c.compression = Compression::from_name(&args.compression)
        .with_context(|| format!("--compression {}", args.compression))?;
    if let Some(b) = args.batch_size {
        c.batch_size = b;
    }
    if let Some(l) = args.linger_ms {
        c.linger = Duration::from_millis(l);
    }
    let mut idempotence_set = false;
    for p in &args.producer_property {
        let (k, v) = split_kv(p)?;
        let num = || v.parse::<u64>().with_context(|| format!("{k}={v}"));
        match k {
            "enable.idempotence" => {
                c.enable_idempotence = v.parse().with_context(|| format!("{k}={v}"))?;
                idempotence_set = true;
            }
            "buffer.memory" => c.buffer_memory = num()? as usize,
            "max.in.flight.requests.per.connection" => c.max_in_flight = num()? as usize,
            "max.request.size" => c.max_request_size = num()? as usize,
            "request.timeout.ms" => c.client.request_timeout = Duration::from_millis(num()?),
            "delivery.timeout.ms" => c.delivery_timeout = Duration::from_millis(num()?),
            "max.block.ms" => c.max_block = Duration::from_millis(num()?),
            "batch.size" => c.batch_size = num()? as usize,
            "linger.ms" => c.linger = Duration::from_millis(num()?),
            "client.id" => c.client.client_id = v.to_owned(),
            _ => bail!("unknown producer property {k}"),
        }
    }
    // As the Java client: idempotence is on by default only when acks=all allows it.
    if c.acks != Acks::All && !idempotence_set {
        c.enable_idempotence = false;
    }
    Ok((c, topic))
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
    let mut parse_key = false;
    let mut separator = "\t".to_owned();
    for p in &args.property {
        match split_kv(p)? {
            ("parse.key", v) => parse_key = v.parse().with_context(|| format!("parse.key={v}"))?,
            ("key.separator", v) => separator = v.to_owned(),
            (k, _) => bail!("unknown property {k}"),
        }
    }
    let (config, topic) = producer_config(&args.producer)?;
    let producer = Producer::new(config).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut failed = 0u64;
    let mut line_no = 0u64;
    while let Some(line) = lines.next_line().await? {
        line_no += 1;
        let mut record = ProducerRecord::new(topic.clone(), Vec::new());
        if parse_key {
            let Some((k, v)) = line.split_once(separator.as_str()) else {
                bail!("line {line_no}: no key separator {separator:?} in {line:?}");
            };
            record.key = Some(k.to_owned().into());
            record.value = Some(v.to_owned().into());
        } else {
            record.value = Some(line.into());
        }
        pending.push_back(producer.send(record).await?);
        // Bound memory: settle the oldest deliveries as we go.
        while pending.len() > 10_000 {
            if let Some(d) = pending.pop_front()
                && let Err(e) = d.await
            {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    for d in pending {
        if let Err(e) = d.await {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    producer.close().await;
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

/// Latency statistics of one reporting window or of the whole run.
#[derive(Default)]
struct Window {
    count: u64,
    bytes: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
}

impl Window {
    fn record(&mut self, bytes: usize, latency_us: u64) {
        self.count += 1;
        self.bytes += bytes as u64;
        self.latency_sum_us += latency_us;
        self.latency_max_us = self.latency_max_us.max(latency_us);
    }

    fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let avg = if self.count == 0 {
            0.0
        } else {
            self.latency_sum_us as f64 / self.count as f64 / 1000.0
        };
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MiB/sec), {:.1} ms avg latency, {:.1} ms max latency",
            self.count,
            self.count as f64 / secs,
            self.bytes as f64 / secs / (1024.0 * 1024.0),
            avg,
            self.latency_max_us as f64 / 1000.0
        )
    }
}

/// The future's output if it is ready now, without waiting.
fn poll_now<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

async fn perf(args: PerfArgs) -> anyhow::Result<()> {
    let (config, topic) = producer_config(&args.producer)?;
    let producer = Producer::new(config).await?;
    // One random payload of uppercase letters, reused, as kafka-producer-perf-test.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ std::process::id() as u64;
    let payload: Bytes = (0..args.record_size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let record_size = args.record_size;
    let interval = Duration::from_secs(args.reporting_interval.max(1));

    // Deliveries are awaited in send order by a collector task that timestamps
    // each completion; with several partitions a record finished early is counted
    // when the ones before it finish, so latencies are an upper bound. To keep the
    // tool's own cost per record small, futures travel to the collector in chunks
    // and the clock is read once per chunk, per wait and every CLOCK_EVERY records
    // (so a latency is late by at most that many sends, microseconds).
    const CHUNK: usize = 64;
    const CLOCK_EVERY: u32 = 16;
    type Chunk = Vec<(Instant, DeliveryFuture)>;
    let (tx, mut rx) = mpsc::unbounded_channel::<Chunk>();
    let collector = tokio::spawn(async move {
        let start = Instant::now();
        let mut all = Window::default();
        let mut window = Window::default();
        let mut window_start = start;
        let mut latencies: Vec<u32> = Vec::new();
        let mut errors = 0u64;
        let mut since_clock = 0u32;
        while let Some(chunk) = rx.recv().await {
            let mut now = Instant::now();
            for (sent, mut delivery) in chunk {
                let result = match poll_now(&mut delivery) {
                    Some(result) => {
                        since_clock += 1;
                        if since_clock >= CLOCK_EVERY {
                            since_clock = 0;
                            now = Instant::now();
                        }
                        result
                    }
                    None => {
                        let result = delivery.await;
                        now = Instant::now();
                        since_clock = 0;
                        result
                    }
                };
                match result {
                    Ok(_) => {
                        let us = now.saturating_duration_since(sent).as_micros() as u64;
                        all.record(record_size, us);
                        window.record(record_size, us);
                        latencies.push(us.min(u32::MAX as u64) as u32);
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 10 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            if window_start.elapsed() >= interval {
                println!("{}.", window.line(window_start.elapsed()));
                window = Window::default();
                window_start = Instant::now();
            }
        }
        (all, start.elapsed(), latencies, errors)
    });

    let start = Instant::now();
    let throughput = args.throughput;
    let topic: std::sync::Arc<str> = topic.into();
    let mut chunk: Chunk = Vec::with_capacity(CHUNK);
    let mut sent = start;
    for i in 0..args.num_records {
        if throughput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / throughput);
            if due > Instant::now() {
                if !chunk.is_empty() {
                    tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                        .ok();
                }
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let record = ProducerRecord {
            topic: topic.clone(),
            value: Some(payload.clone()),
            ..ProducerRecord::default()
        };
        if i % u64::from(CLOCK_EVERY) == 0 || throughput > 0.0 {
            sent = Instant::now();
        }
        let delivery = producer.send(record).await?;
        chunk.push((sent, delivery));
        if chunk.len() == CHUNK {
            tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                .ok();
        }
    }
    if !chunk.is_empty() {
        tx.send(chunk).ok();
    }
    drop(tx);
    producer.flush().await;
    let (all, elapsed, mut latencies, errors) = collector.await?;
    producer.close().await;
    latencies.sort_unstable();
    let pct = |q: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        u64::from(latencies[i]) / 1000
    };
    println!(
        "{}, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        all.line(elapsed),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(0.999)
    );
    if errors > 0 {
        bail!("{errors} records failed");
    }
    Ok(())
}
