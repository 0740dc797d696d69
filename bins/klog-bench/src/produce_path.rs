//! `klog-bench produce-path`: a fixed number of Produce requests through the
//! broker's own request path (decode, validate, append, replication state,
//! response), in process and without sockets, for instruction counting:
//!
//! ```sh
//! valgrind --tool=callgrind target/release/klog-bench produce-path --requests 0
//! valgrind --tool=callgrind target/release/klog-bench produce-path --requests 2000
//! ```
//!
//! The difference of the two totals divided by the request count is the cost of one
//! request, repeatable to a few instructions whatever else the machine does.

use bytes::{BufMut, Bytes, BytesMut};
use klog_broker::BrokerConfig;
use klog_broker::handlers::DirectRequest;
use klog_broker::node::Node;
use klog_codec::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klog_codec::protocol::messages::{ApiKey, ProduceRequest, TopicName};
use klog_codec::protocol::{Encodable, Request, StrBytes, decode_request, parse_request_header};
use klog_codec::{BatchBuilder, Compression};

/// Sends `requests` Produce v7 requests (plus one first, to warm up),
/// each one batch of about `batch_bytes` of `record_size`-byte records, with `acks`.
pub fn produce_path(
    requests: usize,
    acks: i16,
    record_size: usize,
    batch_bytes: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pairs = vec![
        ("log.dirs".to_owned(), dir.path().display().to_string()),
        ("listeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned()),
        ("log.segment.bytes".to_owned(), (1u64 << 30).to_string()),
    ];
    let (config, _) = BrokerConfig::from_pairs(pairs)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let node = rt.block_on(Node::start(config))?;
    rt.block_on(node.broker().create_topic("produce-path", 1, 1))
        .map_err(|c| anyhow::anyhow!("topic not created: error {c}"))?;
    let broker = node.broker().clone();
    let value = vec![b'x'; record_size];
    let mut builder = BatchBuilder::new(Vec::new(), Compression::None);
    let mut i = 0u64;
    while builder.uncompressed_size() + record_size + 16 < batch_bytes {
        builder.push(1_700_000_000_000, Some(&i.to_be_bytes()), Some(&value), &[])?;
        i += 1;
    }
    let records = builder.finish()?;
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("produce-path")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::copy_from_slice(&records))),
                ]),
        ]);
    // The request frame as the broker reads it (after the size prefix): header v1.
    let mut frame = BytesMut::new();
    frame.put_i16(0);
    frame.put_i16(7);
    frame.put_i32(1);
    frame.put_i16(5);
    frame.put_slice(b"bench");
    req.encode(&mut frame, 7)?;
    let frame = frame.freeze();
    let call = DirectRequest::new(ApiKey::Produce, 7);
    for n in 0..=requests {
        let (header, at) = parse_request_header(&frame)?;
        let Ok(Request::Produce(r)) = decode_request(&header, frame.slice(at..)) else {
            anyhow::bail!("not a produce request");
        };
        let resp = rt
            .block_on(broker.produce(&call.ctx(), r))
            .ok_or_else(|| anyhow::anyhow!("no response"))?;
        let code = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map(|p| p.error_code);
        anyhow::ensure!(code == Some(0), "request {n} answered {code:?}");
    }
    rt.block_on(node.shutdown())?;
    println!(
        "produce-path requests={requests} acks={acks} record_size={record_size} batch_bytes={} ok",
        records.len()
    );
    Ok(())
}
