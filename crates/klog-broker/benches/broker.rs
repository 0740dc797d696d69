//! Produce handling and Fetch serving, measured through the broker's own code paths.
//!
//! * `produce/*`: a Produce v7 frame carrying one pre-built batch is decoded, the
//!   batch validated and appended, and the response encoded: everything the broker
//!   does per request except the socket.
//! * `fetch/*`: a real broker on a loopback port serves Fetch v11 requests for 1 MiB
//!   of stored batches to a blocking client, once with `sendfile` and once with the
//!   buffered read+write path (`klog.fetch.mode`).
//!
//! Run: `cargo bench -p klog-broker --bench broker -- --warm-up-time 1 --measurement-time 3`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klog_broker::BrokerConfig;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_codec::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klog_codec::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klog_codec::protocol::messages::{ApiKey, BrokerId, FetchRequest, ProduceRequest, TopicName};
use klog_codec::protocol::{
    Encodable, Request, StrBytes, decode_request, encode_response, parse_request_header,
};
use klog_codec::{BatchBuilder, Compression};

const TOPIC: &str = "bench";

fn batch(record_size: usize, batch_bytes: usize) -> Vec<u8> {
    let value = vec![b'x'; record_size];
    let mut b = BatchBuilder::new(Vec::with_capacity(batch_bytes + 4096), Compression::None);
    let mut i = 0u64;
    while b.uncompressed_size() + record_size + 16 < batch_bytes {
        let key = i.to_be_bytes();
        b.push(1_700_000_000_000, Some(&key), Some(&value), &[])
            .expect("push");
        i += 1;
    }
    b.finish().expect("finish")
}

/// A one-node cluster in `dir` with the topic [`TOPIC`] (one partition).
fn node(rt: &tokio::runtime::Runtime, dir: &std::path::Path, extra: &[(&str, &str)]) -> Arc<Node> {
    let mut pairs = vec![
        ("log.dirs".to_owned(), dir.display().to_string()),
        ("listeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned()),
        ("log.segment.bytes".to_owned(), (256u64 << 20).to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (config, _) = BrokerConfig::from_pairs(pairs).expect("config");
    rt.block_on(async {
        let node = Node::start(config).await.expect("node");
        node.broker()
            .create_topic(TOPIC, 1, 1)
            .await
            .expect("topic");
        node
    })
}

fn request_frame<R: Encodable>(api_key: i16, version: i16, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(1);
    buf.put_i16(5);
    buf.put_slice(b"bench");
    body.encode(&mut buf, version).expect("encode");
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

fn produce_request(records: &[u8]) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::copy_from_slice(records))),
                ]),
        ])
}

fn bench_produce(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("produce");
    for (name, record_size, batch_bytes) in [
        ("1KiB_records_1MiB_batch", 1024, 1 << 20),
        ("100B_records_1MiB_batch", 100, 1 << 20),
        ("1KiB_records_16KiB_batch", 1024, 16 << 10),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = node(&rt, dir.path(), &[]);
        let b = n.broker().clone();
        let records = batch(record_size, batch_bytes);
        // The broker sees the frame without its size prefix.
        let frame = request_frame(0, 7, &produce_request(&records)).slice(4..);
        group.throughput(Throughput::Bytes(records.len() as u64));
        group.bench_function(name, |bench| {
            let call = DirectRequest::new(ApiKey::Produce, 7);
            bench.iter(|| {
                let (header, at) = parse_request_header(&frame).expect("header");
                let Ok(Request::Produce(req)) = decode_request(&header, frame.slice(at..)) else {
                    panic!("not a produce request");
                };
                let resp = rt
                    .block_on(b.produce(&call.ctx(), req))
                    .expect("acks=1 response");
                encode_response(&header, &resp).expect("encode")
            })
        });
        rt.block_on(n.shutdown()).expect("shutdown");
    }
    group.finish();
}

fn fetch_frame(offset: i64) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    request_frame(1, 11, &req)
}

fn bench_fetch(c: &mut Criterion) {
    let records = batch(1024, 1 << 20);
    let per_batch = klog_codec::RecordBatch::new(&records)
        .expect("batch")
        .records_count() as i64;
    const BATCHES: i64 = 64;
    let mut group = c.benchmark_group("fetch");
    group.throughput(Throughput::Bytes(records.len() as u64));
    for mode in ["sendfile", "buffered"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let n = node(&rt, dir.path(), &[("klog.fetch.mode", mode)]);
        let b = n.broker().clone();
        let call = DirectRequest::new(ApiKey::Produce, 7);
        for _ in 0..BATCHES {
            let frame = request_frame(0, 7, &produce_request(&records)).slice(4..);
            let (header, at) = parse_request_header(&frame).expect("header");
            let Ok(Request::Produce(req)) = decode_request(&header, frame.slice(at..)) else {
                panic!("not a produce request");
            };
            rt.block_on(b.produce(&call.ctx(), req)).expect("response");
        }
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(klog_broker::net::run(b.clone(), listener, async {
            let _ = stop_rx.await;
        }));
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        let mut response = vec![0u8; 2 << 20];
        let mut next = 0i64;
        group.bench_function(mode, |bench| {
            bench.iter(|| {
                let frame = fetch_frame((next % BATCHES) * per_batch);
                next += 1;
                sock.write_all(&frame).expect("send");
                let mut size = [0u8; 4];
                sock.read_exact(&mut size).expect("size");
                let size = i32::from_be_bytes(size) as usize;
                sock.read_exact(&mut response[..size]).expect("body");
                assert!(size > records.len(), "fetch returned {size} bytes");
            })
        });
        drop(sock);
        let _ = stop_tx.send(());
        rt.block_on(server).expect("join").expect("server");
        rt.block_on(n.shutdown()).expect("shutdown");
    }
    group.finish();
}

criterion_group!(benches, bench_produce, bench_fetch);
criterion_main!(benches);
