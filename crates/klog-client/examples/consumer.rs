//! A minimal consumer: reads every partition of a topic from the beginning and
//! prints the records until none arrive for two seconds.
//!
//! ```text
//! cargo run -p klog-client --example consumer -- 127.0.0.1:9092 my-topic
//! ```

use std::time::Duration;

use klog_client::{Consumer, ConsumerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "example".to_owned());

    let mut consumer = Consumer::new(ConsumerConfig::new(&bootstrap))?;
    consumer
        .assign_topic(&topic, Duration::from_secs(10))
        .await?;
    consumer.seek_to_beginning();
    loop {
        let records = consumer.poll(Duration::from_secs(2)).await?;
        if records.is_empty() {
            break;
        }
        for r in records {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            println!("{}-{} @ {}: {:?}", r.topic, r.partition, r.offset, value);
        }
    }
    Ok(())
}
