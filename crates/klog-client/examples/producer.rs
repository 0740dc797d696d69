//! A minimal producer: sends ten keyed records and prints where each one landed.
//!
//! ```text
//! cargo run -p klog-client --example producer -- 127.0.0.1:9092 my-topic
//! ```

use klog_client::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "example".to_owned());

    // Defaults as the Java client: acks=all, idempotence on, linger.ms=5.
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new(topic.clone(), format!("hello {i}"))
            .with_key(format!("key-{}", i % 3));
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        let meta = delivery.await?;
        println!("{}-{} @ offset {}", meta.topic, meta.partition, meta.offset);
    }
    producer.close().await;
    Ok(())
}
