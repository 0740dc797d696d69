//! `klog-bench`: the helpers `scripts/perf` runs to measure klog against this
//! machine's limits (docs/PERFORMANCE.md, "Issue 6").
//!
//! The `limit-*` subcommands are protocol-free programs that move the same bytes the
//! broker moves, with nothing of Kafka in between; the others drive a running broker
//! through `klog-client`. Every subcommand prints one final `RESULT key=value ...`
//! line for the script to read.
//!
//! ```text
//! klog-bench limit-produce --bytes N --chunk C --dir D
//! klog-bench limit-fetch --mode sendfile|readwrite --file F [--file F ...]
//! klog-bench limit-fsync --bytes N --dir D
//! klog-bench latency --bootstrap-server B --topic T --rate R --seconds S [--acks all]
//! klog-bench failover --bootstrap-server B --topic T --kill-pid PID
//! klog-bench multi --bootstrap-server B --topic T --producers 16 --consumers 16 ...
//! klog-bench create-topics --bootstrap-server B --prefix P --count 1000 --partitions 10
//! klog-bench wait-ready --bootstrap-server B --topics N --since-ns T0
//! ```

mod produce_path;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use klog_client::{
    Acks, Admin, Bytes, ClientConfig, Consumer, ConsumerConfig, NewTopic, Offset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(name = "klog-bench", version, about = "klog benchmark helpers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FetchLimitMode {
    /// `sendfile(2)` from the page cache to the socket.
    Sendfile,
    /// `pread` into a buffer, then `write` to the socket.
    Readwrite,
}

/// The load of a latency run, with or without klog.
#[derive(clap::Args, Debug, Clone, Copy)]
struct LatencyLoad {
    /// Records per second.
    #[arg(long)]
    rate: u64,
    /// How long to send.
    #[arg(long)]
    seconds: f64,
    /// Record (value) size in bytes (at least 8).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Also print p50 / p99 / max per window of this many ms of send time (0:
    /// off), to see when in the run latencies rise.
    #[arg(long, default_value_t = 0)]
    timeline_ms: u64,
}

impl LatencyLoad {
    /// How many records the run sends; fails if a record cannot hold its send time.
    fn records(&self) -> anyhow::Result<u64> {
        if self.record_size < 8 {
            bail!("--record-size must be at least 8");
        }
        Ok((self.rate as f64 * self.seconds) as u64)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce requests through the broker's request path in process (no sockets),
    /// for counting instructions per request with callgrind (see `produce_path`).
    ProducePath {
        /// Requests after the first (which creates the topic).
        #[arg(long)]
        requests: usize,
        /// acks of every request (1 or -1).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        acks: i16,
        /// Bytes per record value.
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Bytes per batch (one batch per request).
        #[arg(long, default_value_t = 16 * 1024)]
        batch_bytes: usize,
    },
    /// Protocol-free produce limit: push `bytes` over loopback TCP in `chunk`-sized
    /// writes; the receiver computes CRC-32C of everything and appends it to a file
    /// through a buffer (page cache, no fsync).
    LimitProduce {
        /// Total bytes to move.
        #[arg(long)]
        bytes: u64,
        /// Size of each write by the sender (the producer's batch size).
        #[arg(long, default_value_t = 256 * 1024)]
        chunk: usize,
        /// Folder for the appended file (removed afterwards).
        #[arg(long)]
        dir: PathBuf,
        /// Also consume while producing: a fetcher follows the file as it grows
        /// (pread + write over a second loopback socket) to a reader that computes
        /// CRC-32C of everything; the rate counts until the reader has every byte.
        #[arg(long)]
        consume: bool,
        /// Make the sender do a producer's unavoidable work too: build each chunk
        /// by copying values of this many bytes into a batch buffer and compute its
        /// CRC-32C before writing it (0: write a ready buffer).
        #[arg(long, default_value_t = 0)]
        build_records: usize,
    },
    /// Fetch limit: send these files whole over loopback TCP to a reader that
    /// discards them, with sendfile or read+write.
    LimitFetch {
        /// How the sender moves the bytes.
        #[arg(long, value_enum)]
        mode: FetchLimitMode,
        /// Files to send, in order.
        #[arg(long, required = true)]
        file: Vec<PathBuf>,
    },
    /// Durable-write limit: write `bytes` to a new file in 1 MiB writes with an
    /// fdatasync after each.
    LimitFsync {
        /// Total bytes to write.
        #[arg(long)]
        bytes: u64,
        /// Bytes between fdatasyncs (and size of each write).
        #[arg(long, default_value_t = 1 << 20)]
        every: usize,
        /// Folder for the file (removed afterwards).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Protocol-free latency limit: the `latency` workload with no protocol. A
    /// sender writes each millisecond's due records (send time in the first 8
    /// bytes) to a loopback socket; a relay computes CRC-32C of what it reads,
    /// appends it to a file (page cache, no fsync) and forwards it over a second
    /// loopback socket to a reader that measures send -> receive per record.
    LimitLatency {
        #[command(flatten)]
        load: LatencyLoad,
        /// Folder for the appended file (removed afterwards).
        #[arg(long)]
        dir: PathBuf,
    },
    /// End-to-end latency: produce at a fixed rate while consuming the same
    /// partition; each value carries its send time, the consumer measures send ->
    /// receive.
    Latency {
        /// Broker to bootstrap from.
        #[arg(long)]
        bootstrap_server: String,
        /// Topic (partition 0 is used).
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        load: LatencyLoad,
        /// Producer linger.ms.
        #[arg(long, default_value_t = 0)]
        linger_ms: u64,
        /// Producer batch.size in bytes.
        #[arg(long, default_value_t = 256 * 1024)]
        batch_size: usize,
        /// Producer acks: 1 or all.
        #[arg(long, default_value = "1", value_parser = ["1", "all", "-1"])]
        acks: String,
    },
    /// Failover time: an idempotent `acks=all` producer sends one record every
    /// `interval_ms` to one partition of `topic`; after `warmup_s` it kills
    /// (SIGKILL) the process `kill_pid` (the partition's leader) and reports the
    /// time from the kill to the first acknowledgement of a record sent after it,
    /// the broker that leads the partition then, and that every record was
    /// acknowledged.
    Failover {
        /// Brokers to bootstrap from.
        #[arg(long)]
        bootstrap_server: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// The partition written (and whose leader `kill_pid` is).
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// Pid of the leader's process.
        #[arg(long)]
        kill_pid: u32,
        /// Milliseconds between records.
        #[arg(long, default_value_t = 5)]
        interval_ms: u64,
        /// Seconds of steady produce before the kill.
        #[arg(long, default_value_t = 2.0)]
        warmup_s: f64,
        /// Give up this many seconds after the kill.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
    /// Many clients: `producers` producers and `consumers` consumers over the
    /// topic's `partitions` partitions, at the same time; reports the aggregate rate
    /// (bytes produced / time until every record was consumed).
    Multi {
        /// Broker to bootstrap from.
        #[arg(long)]
        bootstrap_server: String,
        /// Topic with `partitions` partitions.
        #[arg(long)]
        topic: String,
        /// Number of producers (each its own connection).
        #[arg(long, default_value_t = 16)]
        producers: usize,
        /// Number of consumers (each its own connection).
        #[arg(long, default_value_t = 16)]
        consumers: usize,
        /// Partitions of the topic (a multiple of both counts).
        #[arg(long, default_value_t = 64)]
        partitions: usize,
        /// Records each producer sends.
        #[arg(long)]
        records_per_producer: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Producer batch.size.
        #[arg(long, default_value_t = 256 * 1024)]
        batch_size: usize,
        /// Producer linger.ms.
        #[arg(long, default_value_t = 10)]
        linger_ms: u64,
    },
    /// Creates `count` topics of `partitions` partitions each, in requests of 100.
    CreateTopics {
        /// Broker to bootstrap from.
        #[arg(long)]
        bootstrap_server: String,
        /// Topic name prefix (names are PREFIX0000 ...).
        #[arg(long)]
        prefix: String,
        /// Number of topics.
        #[arg(long)]
        count: usize,
        /// Partitions per topic.
        #[arg(long)]
        partitions: i32,
    },
    /// Waits until the broker lists at least `topics` topics and a produce to the
    /// last of them succeeds; reports the time since `since_ns` (wall clock, ns).
    WaitReady {
        /// Broker to bootstrap from.
        #[arg(long)]
        bootstrap_server: String,
        /// Topics that must be listed.
        #[arg(long)]
        topics: usize,
        /// Topic to produce one record to.
        #[arg(long)]
        probe_topic: String,
        /// Start time, ns since the epoch (`date +%s%N`).
        #[arg(long)]
        since_ns: u128,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::LimitProduce {
            bytes,
            chunk,
            dir,
            consume,
            build_records,
        } => limit_produce(bytes, chunk, &dir, consume, build_records),
        Command::LimitFetch { mode, file } => limit_fetch(mode, &file),
        Command::LimitFsync { bytes, every, dir } => limit_fsync(bytes, every, &dir),
        Command::LimitLatency { load, dir } => limit_latency(load, &dir),
        Command::ProducePath {
            requests,
            acks,
            record_size,
            batch_bytes,
        } => produce_path::produce_path(requests, acks, record_size, batch_bytes),
        other => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                match other {
                    Command::Latency {
                        bootstrap_server,
                        topic,
                        load,
                        linger_ms,
                        batch_size,
                        acks,
                    } => {
                        let mut pc = ProducerConfig::new(&bootstrap_server);
                        pc.acks = if acks == "1" { Acks::Leader } else { Acks::All };
                        pc.enable_idempotence = false;
                        pc.linger = Duration::from_millis(linger_ms);
                        pc.batch_size = batch_size;
                        latency(&bootstrap_server, &topic, load, pc).await
                    }
                    Command::Failover {
                        bootstrap_server,
                        topic,
                        partition,
                        kill_pid,
                        interval_ms,
                        warmup_s,
                        timeout_s,
                    } => {
                        failover(
                            &bootstrap_server,
                            &topic,
                            partition,
                            kill_pid,
                            Duration::from_millis(interval_ms),
                            Duration::from_secs_f64(warmup_s),
                            Duration::from_secs(timeout_s),
                        )
                        .await
                    }
                    Command::Multi {
                        bootstrap_server,
                        topic,
                        producers,
                        consumers,
                        partitions,
                        records_per_producer,
                        record_size,
                        batch_size,
                        linger_ms,
                    } => {
                        multi(MultiArgs {
                            bootstrap: bootstrap_server,
                            topic,
                            producers,
                            consumers,
                            partitions,
                            records_per_producer,
                            record_size,
                            batch_size,
                            linger_ms,
                        })
                        .await
                    }
                    Command::CreateTopics {
                        bootstrap_server,
                        prefix,
                        count,
                        partitions,
                    } => create_topics(&bootstrap_server, &prefix, count, partitions).await,
                    Command::WaitReady {
                        bootstrap_server,
                        topics,
                        probe_topic,
                        since_ns,
                        timeout_s,
                    } => {
                        wait_ready(&bootstrap_server, topics, &probe_topic, since_ns, timeout_s)
                            .await
                    }
                    _ => unreachable!("limits are handled above"),
                }
            })
        }
    }
}

/// A payload of `n` pseudo-random uppercase letters.
fn payload(n: usize) -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect()
}

/// Creates (or truncates) the scratch file `<dir>/<name>-<pid>.log` of a limit run.
fn scratch_file(dir: &std::path::Path, name: &str) -> anyhow::Result<(PathBuf, File)> {
    let path = dir.join(format!("{name}-{}.log", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    Ok((path, file))
}

/// Reads `sock` to its end; returns the byte count and, with `check`, the CRC-32C
/// of everything read (0 without).
fn read_to_end_counting(mut sock: TcpStream, check: bool) -> io::Result<(u64, u32)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut total, mut crc) = (0u64, 0u32);
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok((total, crc));
        }
        if check {
            crc = crc32c::crc32c_append(crc, buf.get(..n).unwrap_or_default());
        }
        total += n as u64;
    }
}

/// How far the limit's receiver has appended to its file, for a fetcher to follow.
#[derive(Default)]
struct Appended {
    state: std::sync::Mutex<(u64, bool)>,
    grew: std::sync::Condvar,
}

impl Appended {
    fn publish(&self, len: u64, done: bool) {
        if let Ok(mut s) = self.state.lock() {
            *s = (len, done);
        }
        self.grew.notify_all();
    }

    /// Waits until the file is longer than `pos` or complete; returns (length, done).
    fn wait_past(&self, pos: u64) -> (u64, bool) {
        let Ok(mut s) = self.state.lock() else {
            return (pos, true);
        };
        while s.0 <= pos && !s.1 {
            s = match self.grew.wait(s) {
                Ok(s) => s,
                Err(_) => return (pos, true),
            };
        }
        *s
    }
}

fn limit_produce(
    bytes: u64,
    chunk: usize,
    dir: &std::path::Path,
    consume: bool,
    build_records: usize,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (path, mut file) = scratch_file(dir, "limit-produce")?;
    let appended = Arc::new(Appended::default());
    let progress = appended.clone();
    let receiver = std::thread::spawn(move || -> io::Result<(u64, u32)> {
        let (mut sock, _) = listener.accept()?;
        // A 1 MiB append buffer, as a BufWriter of that capacity, that tells the
        // fetcher (if any) how far the file has grown after each write.
        let cap = 1 << 20;
        let mut out: Vec<u8> = Vec::with_capacity(cap);
        let mut buf = vec![0u8; cap];
        let (mut total, mut crc, mut len) = (0u64, 0u32, 0u64);
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or_default();
            crc = crc32c::crc32c_append(crc, data);
            if out.len() + data.len() > cap {
                file.write_all(&out)?;
                len += out.len() as u64;
                out.clear();
                progress.publish(len, false);
            }
            out.extend_from_slice(data);
            total += n as u64;
        }
        file.write_all(&out)?;
        len += out.len() as u64;
        progress.publish(len, true);
        Ok((total, crc))
    });
    // Consuming: a fetcher sends the file on as it grows; a reader checks it.
    let consumer = if consume {
        let out = TcpListener::bind("127.0.0.1:0")?;
        let out_addr = out.local_addr()?;
        let read_path = path.clone();
        let fetcher = std::thread::spawn(move || -> io::Result<u64> {
            let (sock, _) = out.accept()?;
            let file = File::open(&read_path)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            loop {
                let (len, done) = appended.wait_past(pos);
                pos = copy_range(&sock, &file, &mut buf, pos, len)?;
                if done {
                    return Ok(pos);
                }
            }
        });
        let reader = std::thread::spawn(move || -> io::Result<(u64, u32)> {
            read_to_end_counting(TcpStream::connect(out_addr)?, true)
        });
        Some((fetcher, reader))
    } else {
        None
    };
    let data = payload(chunk);
    let value = payload(build_records.max(1));
    let mut batch: Vec<u8> = Vec::with_capacity(chunk);
    let mut sender_crc = 0u32;
    let mut sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        if build_records > 0 {
            // The copy of every value into the batch and the batch's CRC-32C, as
            // any producer does; no framing, so the bytes stay the same count.
            batch.clear();
            while batch.len() < n {
                let take = (n - batch.len()).min(value.len());
                batch.extend_from_slice(value.get(..take).unwrap_or_default());
            }
            sender_crc ^= crc32c::crc32c(&batch);
            sock.write_all(&batch)?;
        } else {
            sock.write_all(data.get(..n).unwrap_or_default())?;
        }
        left -= n as u64;
    }
    drop(sock);
    std::hint::black_box(sender_crc);
    let (total, crc) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    if let Some((fetcher, reader)) = consumer {
        fetcher
            .join()
            .map_err(|_| anyhow::anyhow!("fetcher panicked"))??;
        let (consumed, consumed_crc) = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        if consumed != total || consumed_crc != crc {
            bail!("consumed {consumed} bytes (crc32c {consumed_crc:08x}) of {total} ({crc:08x})");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).ok();
    if total != bytes {
        bail!("received {total} of {bytes} bytes");
    }
    let mib_s = total as f64 / MIB / secs;
    let what = if consume {
        " produced and consumed"
    } else {
        ""
    };
    println!(
        "limit-produce: {total} bytes{what} in {secs:.3} s, {mib_s:.1} MiB/s (crc32c {crc:08x})"
    );
    println!("RESULT mib_s={mib_s:.1} secs={secs:.3}");
    Ok(())
}

fn sendfile_all(sock: &TcpStream, file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        let count = (len - offset as u64).min(0x7fff_f000) as usize;
        // SAFETY: both descriptors are open and borrowed for the call; `offset` is a
        // valid, exclusively borrowed off_t.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
    }
    Ok(offset as u64)
}

fn readwrite_all(sock: &TcpStream, file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    copy_range(sock, file, &mut buf, 0, len)
}

/// Sends bytes `from..to` of `file` to `sock` with pread + write through `buf`;
/// returns `to`.
fn copy_range(
    mut sock: &TcpStream,
    file: &File,
    buf: &mut [u8],
    from: u64,
    to: u64,
) -> io::Result<u64> {
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, pos)?;
        sock.write_all(chunk)?;
        pos += n as u64;
    }
    Ok(pos)
}

fn limit_fetch(mode: FetchLimitMode, files: &[PathBuf]) -> anyhow::Result<()> {
    let opened: Vec<File> = files
        .iter()
        .map(|p| File::open(p).with_context(|| format!("{}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> io::Result<u64> {
        read_to_end_counting(TcpStream::connect(addr)?, false).map(|(total, _)| total)
    });
    let (sock, _) = listener.accept()?;
    sock.set_nodelay(true)?;
    let start = Instant::now();
    let mut sent = 0u64;
    for f in &opened {
        sent += match mode {
            FetchLimitMode::Sendfile => sendfile_all(&sock, f)?,
            FetchLimitMode::Readwrite => readwrite_all(&sock, f)?,
        };
    }
    drop(sock);
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    if got != sent {
        bail!("read {got} of {sent} bytes");
    }
    let mib_s = got as f64 / MIB / secs;
    println!("limit-fetch ({mode:?}): {got} bytes in {secs:.3} s, {mib_s:.1} MiB/s");
    println!("RESULT mib_s={mib_s:.1} secs={secs:.3}");
    Ok(())
}

fn limit_fsync(bytes: u64, every: usize, dir: &std::path::Path) -> anyhow::Result<()> {
    let (path, mut file) = scratch_file(dir, "limit-fsync")?;
    let data = payload(every);
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(every as u64) as usize;
        file.write_all(data.get(..n).unwrap_or_default())?;
        file.sync_data()?;
        left -= n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).ok();
    let mib_s = bytes as f64 / MIB / secs;
    println!("limit-fsync: {bytes} bytes in {secs:.3} s, {mib_s:.1} MiB/s");
    println!("RESULT mib_s={mib_s:.1} secs={secs:.3}");
    Ok(())
}

fn limit_latency(load: LatencyLoad, dir: &std::path::Path) -> anyhow::Result<()> {
    let total = load.records()?;
    let (rate, record_size) = (load.rate, load.record_size);
    let to_relay = TcpListener::bind("127.0.0.1:0")?;
    let relay_addr = to_relay.local_addr()?;
    let to_reader = TcpListener::bind("127.0.0.1:0")?;
    let reader_addr = to_reader.local_addr()?;
    let (path, mut file) = scratch_file(dir, "limit-latency")?;
    // The broker's part: check, append, pass on to the consumer.
    let relay = std::thread::spawn(move || -> io::Result<u32> {
        let (mut inp, _) = to_relay.accept()?;
        let mut out = TcpStream::connect(reader_addr)?;
        out.set_nodelay(true)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut crc = 0u32;
        loop {
            let n = inp.read(&mut buf)?;
            if n == 0 {
                return Ok(crc);
            }
            let data = buf.get(..n).unwrap_or_default();
            crc = crc32c::crc32c_append(crc, data);
            file.write_all(data)?;
            out.write_all(data)?;
        }
    });
    // The consumer's part: one clock reading per read, as the latency run takes
    // one per poll.
    let reader = std::thread::spawn(move || -> io::Result<Vec<(u64, u64)>> {
        let (mut sock, _) = to_reader.accept()?;
        let mut timed = Vec::with_capacity(total as usize);
        let mut buf = vec![0u8; 1 << 20];
        let mut carry: Vec<u8> = Vec::with_capacity(record_size);
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                return Ok(timed);
            }
            let now = now_us();
            let mut data = buf.get(..n).unwrap_or_default();
            while !data.is_empty() {
                let take = (record_size - carry.len()).min(data.len());
                let (head, rest) = data.split_at(take);
                carry.extend_from_slice(head);
                data = rest;
                if carry.len() == record_size {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(carry.get(..8).unwrap_or(&[0; 8]));
                    let sent = u64::from_le_bytes(b);
                    timed.push((sent, now.saturating_sub(sent)));
                    carry.clear();
                }
            }
        }
    });
    // The producer's part: every millisecond, the records due so far in one write.
    let template = payload(record_size);
    let mut sock = TcpStream::connect(relay_addr)?;
    sock.set_nodelay(true)?;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = 0u64;
    let mut out = Vec::new();
    while sent < total {
        tick += 1;
        let next = start + Duration::from_millis(tick);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        out.clear();
        while sent < due {
            out.extend_from_slice(&template);
            let at = out.len() - record_size;
            if let Some(head) = out.get_mut(at..at + 8) {
                head.copy_from_slice(&now_us().to_le_bytes());
            }
            sent += 1;
        }
        sock.write_all(&out)?;
    }
    let send_secs = start.elapsed().as_secs_f64();
    drop(sock);
    let relayed = relay.join().map_err(|_| anyhow::anyhow!("relay panicked"));
    let timed = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    std::fs::remove_file(&path).ok();
    relayed??;
    report_latency(
        "limit-latency",
        timed,
        total,
        sent as f64 / send_secs,
        load.timeline_ms,
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

/// The `latency` command; `pc` holds the producer's settings.
async fn failover(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    kill_pid: u32,
    interval: Duration,
    warmup: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut pc = ProducerConfig::new(bootstrap);
    pc.acks = Acks::All;
    pc.enable_idempotence = true;
    pc.linger = Duration::ZERO;
    pc.delivery_timeout = timeout + Duration::from_secs(30);
    let producer = Producer::new(pc).await?;
    let admin = Admin::new(ClientConfig::new(bootstrap))?;
    let leader_before = partition_leader(&admin, topic, partition).await?;
    let topic: Arc<str> = topic.into();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Instant)>();
    let start = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let mut first_ack_after: Option<Duration> = None;
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if killed_at.is_none() && start.elapsed() >= warmup {
                    let status = std::process::Command::new("kill")
                        .args(["-9", &kill_pid.to_string()])
                        .status()?;
                    if !status.success() {
                        bail!("kill -9 {kill_pid} failed");
                    }
                    killed_at = Some(Instant::now());
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    eprintln!(
                        "failover: killed pid {kill_pid} at unix time {}.{:03} s",
                        wall.as_secs(),
                        wall.subsec_millis()
                    );
                }
                if let Some(k) = killed_at
                    && k.elapsed() > timeout
                {
                    bail!("no acknowledgement within {timeout:?} of the kill");
                }
                let record = ProducerRecord::new(topic.clone(), Bytes::from_static(b"failover"))
                    .with_partition(partition);
                let delivery = producer.send(record).await?;
                let sent_at = Instant::now();
                let tx = tx.clone();
                sent += 1;
                tokio::spawn(async move {
                    if delivery.await.is_ok() {
                        let _ = tx.send((sent_at, Instant::now()));
                    }
                });
            }
            Some((sent_at, acked_at)) = rx.recv() => {
                acked += 1;
                if let Some(k) = killed_at
                    && sent_at >= k
                    && first_ack_after.is_none()
                {
                    first_ack_after = Some(acked_at - k);
                    break;
                }
            }
        }
    }
    producer.flush().await;
    // Every delivery has completed; each task sends its acknowledgement and
    // drops its sender.
    drop(tx);
    while rx.recv().await.is_some() {
        acked += 1;
    }
    producer.close().await;
    let leader_after = partition_leader(&admin, topic.as_ref(), partition).await?;
    let secs = first_ack_after.map_or(f64::NAN, |d| d.as_secs_f64());
    println!(
        "failover: leader {leader_before} killed; first acknowledgement of a record sent after the kill in {secs:.3} s; leader now {leader_after}; {acked} of {sent} acknowledged"
    );
    if leader_after == leader_before {
        bail!("the killed broker {leader_before} still leads");
    }
    if acked != sent {
        bail!("only {acked} of {sent} records were acknowledged");
    }
    println!(
        "RESULT secs={secs:.3} sent={sent} acked={acked} leader_before={leader_before} leader_after={leader_after}"
    );
    Ok(())
}

/// The leader of `partition` of `topic`.
async fn partition_leader(admin: &Admin, topic: &str, partition: i32) -> anyhow::Result<i32> {
    let info = admin.describe_topics(&[topic.to_owned()]).await?;
    info.first()
        .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
        .map(|p| p.leader)
        .with_context(|| format!("no partition {partition}"))
}

async fn latency(
    bootstrap: &str,
    topic: &str,
    load: LatencyLoad,
    pc: ProducerConfig,
) -> anyhow::Result<()> {
    let total = load.records()?;
    let LatencyLoad {
        rate,
        seconds,
        record_size,
        timeline_ms,
    } = load;
    let tp = TopicPartition::new(topic, 0);
    let mut consumer = Consumer::new(ConsumerConfig::new(bootstrap))?;
    consumer.assign([tp.clone()]);
    let end = consumer.offset_for(&tp, Offset::End).await?;
    consumer.seek(&tp, Offset::At(end))?;

    let producer = Producer::new(pc).await?;
    let template = payload(record_size);

    let receive = tokio::spawn(async move {
        // (send time, latency) in µs.
        let mut lat: Vec<(u64, u64)> = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds + 30.0);
        while (lat.len() as u64) < total && Instant::now() < deadline {
            let records = consumer.poll(Duration::from_millis(200)).await?;
            let now = now_us();
            for r in records {
                if let Some(v) = r.value.as_ref()
                    && let Some(ts) = v.get(..8)
                {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(ts);
                    let sent = u64::from_le_bytes(b);
                    lat.push((sent, now.saturating_sub(sent)));
                }
            }
        }
        anyhow::Ok(lat)
    });

    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let topic: std::sync::Arc<str> = topic.into();
    // Values are cut from a shared slab: one allocation per 1,024 records.
    let mut slab = bytes::BytesMut::new();
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            if slab.is_empty() {
                slab = bytes::BytesMut::with_capacity(record_size * 1024);
                for _ in 0..1024 {
                    slab.extend_from_slice(&template);
                }
            }
            let mut v = slab.split_to(record_size);
            if let Some(head) = v.get_mut(..8) {
                head.copy_from_slice(&now_us().to_le_bytes());
            }
            let record = ProducerRecord::new(topic.clone(), v.freeze()).with_partition(0);
            drop(producer.send(record).await?);
            sent += 1;
        }
    }
    producer.flush().await;
    let produce_secs = start.elapsed().as_secs_f64();
    let timed = receive.await??;
    producer.close().await;
    report_latency(
        "latency",
        timed,
        total,
        sent as f64 / produce_secs,
        timeline_ms,
    )
}

/// Prints the latency summary (and with `timeline_ms` > 0 one line per window of
/// send time) of `timed`, (send time, latency) pairs in µs; fails when fewer than
/// `total` records were received.
fn report_latency(
    label: &str,
    timed: Vec<(u64, u64)>,
    total: u64,
    rate: f64,
    timeline_ms: u64,
) -> anyhow::Result<()> {
    if timeline_ms > 0 {
        let first = timed.iter().map(|t| t.0).min().unwrap_or(0);
        let mut windows: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for &(sent, l) in &timed {
            windows
                .entry((sent - first) / (timeline_ms * 1000))
                .or_default()
                .push(l);
        }
        for (w, mut l) in windows {
            l.sort_unstable();
            println!(
                "window {:>6} ms: {:>7} records, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                w * timeline_ms,
                l.len(),
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                l.last().copied().unwrap_or(0) as f64 / 1000.0
            );
        }
    }
    let mut lat: Vec<u64> = timed.into_iter().map(|t| t.1).collect();
    lat.sort_unstable();
    let (p50, p99, p999, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    println!(
        "{label}: {} of {total} records received at {:.0} records/s, produce -> consume p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms",
        lat.len(),
        rate
    );
    println!(
        "RESULT received={} p50_ms={p50:.2} p99_ms={p99:.2} p999_ms={p999:.2} max_ms={max:.2}",
        lat.len()
    );
    if (lat.len() as u64) < total {
        bail!("only {} of {total} records received", lat.len());
    }
    Ok(())
}

struct MultiArgs {
    bootstrap: String,
    topic: String,
    producers: usize,
    consumers: usize,
    partitions: usize,
    records_per_producer: u64,
    record_size: usize,
    batch_size: usize,
    linger_ms: u64,
}

async fn multi(a: MultiArgs) -> anyhow::Result<()> {
    if a.producers == 0 || (a.consumers > 0 && !a.partitions.is_multiple_of(a.consumers)) {
        bail!("--partitions must be a multiple of --consumers, and --producers > 0");
    }
    // Producer p writes round-robin to partitions p, p + producers, ... (mod
    // partitions): every partition gets the same number of records.
    let per_producer_partitions = (a.partitions / a.producers).max(1) as u64;
    let records_per_producer =
        a.records_per_producer / per_producer_partitions * per_producer_partitions;
    let total_records = records_per_producer * a.producers as u64;
    let per_consumer_partitions = a.partitions / a.consumers.max(1);
    let value = Bytes::from(payload(a.record_size));
    let received = Arc::new(AtomicU64::new(0));

    // Consumers first, positioned at the start of the (fresh) topic.
    let mut consumers = Vec::new();
    for c in 0..a.consumers {
        let mut consumer = Consumer::new(ConsumerConfig::new(&a.bootstrap))?;
        let tps: Vec<TopicPartition> = (0..per_consumer_partitions)
            .map(|i| TopicPartition::new(a.topic.clone(), (c * per_consumer_partitions + i) as i32))
            .collect();
        consumer.assign(tps.clone());
        for tp in &tps {
            consumer.seek(tp, Offset::Beginning)?;
        }
        consumers.push(consumer);
    }
    let expected_per_consumer = total_records / a.consumers.max(1) as u64;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut consumer in consumers {
        let received = received.clone();
        tasks.spawn(async move {
            let mut got = 0u64;
            while got < expected_per_consumer {
                let records = consumer.poll(Duration::from_secs(10)).await?;
                if records.is_empty() {
                    bail!("consumer idle for 10 s after {got} records");
                }
                got += records.len() as u64;
                received.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    let mut producer_tasks = tokio::task::JoinSet::new();
    for p in 0..a.producers {
        let mut pc = ProducerConfig::new(&a.bootstrap);
        pc.acks = Acks::Leader;
        pc.enable_idempotence = false;
        pc.batch_size = a.batch_size;
        pc.linger = Duration::from_millis(a.linger_ms);
        let producer = Producer::new(pc).await?;
        let topic: Arc<str> = a.topic.as_str().into();
        let value = value.clone();
        let n = records_per_producer;
        let (producers, partitions) = (a.producers as u64, a.partitions as u64);
        producer_tasks.spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            for i in 0..n {
                let partition =
                    ((p as u64 + (i % per_producer_partitions) * producers) % partitions) as i32;
                let record =
                    ProducerRecord::new(topic.clone(), value.clone()).with_partition(partition);
                pending.push_back(producer.send(record).await?);
                while pending.len() > 50_000 {
                    if let Some(d) = pending.pop_front() {
                        d.await?;
                    }
                }
            }
            for d in pending {
                d.await?;
            }
            producer.close().await;
            anyhow::Ok(())
        });
    }
    while let Some(r) = producer_tasks.join_next().await {
        r??;
    }
    let produce_secs = start.elapsed().as_secs_f64();
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = total_records as f64 * a.record_size as f64;
    let mib_s = bytes / MIB / secs;
    println!(
        "multi: {} producers, {} consumers, {} partitions: {total_records} records ({:.1} MiB) produced in {produce_secs:.2} s and consumed by {secs:.2} s: {mib_s:.1} MiB/s aggregate ({} received)",
        a.producers,
        a.consumers,
        a.partitions,
        bytes / MIB,
        received.load(Ordering::Relaxed)
    );
    println!(
        "RESULT mib_s={mib_s:.1} produce_mib_s={:.1} secs={secs:.3}",
        bytes / MIB / produce_secs
    );
    Ok(())
}

async fn create_topics(
    bootstrap: &str,
    prefix: &str,
    count: usize,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(bootstrap))?;
    let start = Instant::now();
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:04}")).collect();
    for group in names.chunks(100) {
        let topics: Vec<NewTopic> = group
            .iter()
            .map(|n| NewTopic::new(n.clone(), partitions).with_replication_factor(1))
            .collect();
        for (name, r) in group.iter().zip(admin.create_topics(&topics).await?) {
            r.with_context(|| format!("create {name}"))?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("create-topics: {count} topics x {partitions} partitions in {secs:.2} s");
    println!("RESULT secs={secs:.3}");
    Ok(())
}

async fn wait_ready(
    bootstrap: &str,
    topics: usize,
    probe_topic: &str,
    since_ns: u128,
    timeout_s: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut cc = ClientConfig::new(bootstrap);
    cc.connect_timeout = Duration::from_millis(200);
    cc.request_timeout = Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            bail!("broker not ready within {timeout_s} s");
        }
        let listed = match Admin::new(cc.clone()) {
            Ok(admin) => admin.list_topics().await.map(|t| t.len()).unwrap_or(0),
            Err(_) => 0,
        };
        if listed >= topics {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut pc = ProducerConfig::new(bootstrap);
    pc.acks = Acks::Leader;
    pc.enable_idempotence = false;
    pc.linger = Duration::ZERO;
    let producer = Producer::new(pc).await?;
    producer
        .send(ProducerRecord::new(
            probe_topic.to_owned(),
            Bytes::from_static(b"ready"),
        ))
        .await?
        .await?;
    producer.close().await;
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let secs = now_ns.saturating_sub(since_ns) as f64 / 1e9;
    println!(
        "wait-ready: {topics} topics listed and a produce acknowledged {secs:.3} s after start"
    );
    println!("RESULT secs={secs:.3}");
    Ok(())
}
