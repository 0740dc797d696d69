//! End to end across the crates: klog-client's producer and consumer against a
//! klog-broker served in the same process over loopback TCP, so every layer is on
//! the path (client batching and codec, frames, the broker's produce and fetch
//! handlers, klog-storage appends and file reads, the socket both ways).
//!
//! * `end_to_end/produce`: 2,000 records of 1 KiB sent with the producer's defaults
//!   (acks=all, idempotent), every delivery awaited.
//! * `end_to_end/fetch`: the same 2,000 records consumed from the beginning.
//!
//! The per-crate benches isolate the parts (`cargo bench -p klog-broker --bench
//! broker`, `-p klog-storage`, `-p klog-codec`); `scripts/perf` is the load tool
//! whose numbers go into docs/PERFORMANCE.md.
//!
//! Run: `cargo bench --bench end_to_end` (add `-- --measurement-time 3` for a
//! shorter run). `cargo test --bench end_to_end` runs each once, as CI does.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klog_broker::BrokerConfig;
use klog_broker::node::Node;
use klog_client::{
    Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

const TOPIC: &str = "e2e";
const RECORDS: usize = 2_000;
const RECORD_BYTES: usize = 1024;

/// A broker serving on a loopback port until `stop` is sent.
struct Served {
    node: Arc<Node>,
    bootstrap: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

fn serve(rt: &Runtime) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let bootstrap = listener.local_addr().expect("address").to_string();
    let pairs = [
        ("listeners", format!("PLAINTEXT://{bootstrap}")),
        ("log.dirs", dir.path().display().to_string()),
        ("offsets.topic.num.partitions", "1".to_owned()),
    ];
    let (config, _) =
        BrokerConfig::from_pairs(pairs.map(|(k, v)| (k.to_owned(), v))).expect("config");
    let node = rt.block_on(async {
        let node = Node::start(config).await.expect("node");
        node.broker()
            .create_topic(TOPIC, 1, 1)
            .await
            .expect("topic");
        node
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = rt.spawn(klog_broker::net::run(
        node.broker().clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    Served {
        node,
        bootstrap,
        stop,
        server,
        _dir: dir,
    }
}

async fn produce_all(producer: &Producer) {
    let value = vec![b'x'; RECORD_BYTES];
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(TOPIC, value.clone()).with_key(i.to_string());
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
}

fn end_to_end(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let served = serve(&rt);
    // The client's defaults, as the Java client's: acks=all, idempotent, linger 5 ms.
    let producer = rt
        .block_on(Producer::new(ProducerConfig::new(&served.bootstrap)))
        .expect("producer");

    let mut group = c.benchmark_group("end_to_end");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64));
    group.bench_function("produce", |b| {
        b.iter(|| rt.block_on(produce_all(&producer)))
    });

    let mut consumer = Consumer::new(ConsumerConfig::new(&served.bootstrap)).expect("consumer");
    consumer.assign([TopicPartition::new(TOPIC, 0)]);
    group.bench_function("fetch", |b| {
        b.iter(|| {
            rt.block_on(async {
                consumer.seek_to_beginning();
                let mut read = 0;
                while read < RECORDS {
                    read += consumer
                        .poll(Duration::from_secs(10))
                        .await
                        .expect("poll")
                        .len();
                }
            })
        })
    });
    group.finish();

    rt.block_on(producer.close());
    let _ = served.stop.send(());
    rt.block_on(served.server)
        .expect("server task")
        .expect("server");
    rt.block_on(served.node.shutdown()).expect("shutdown");
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
