//! Helpers shared by the table tests of this crate.

use klog_codec::protocol::ResponseError;

/// A Kafka error code as its name (`NONE` for 0).
pub fn err_name(code: i16) -> String {
    if code == 0 {
        return "NONE".to_owned();
    }
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("code{code}"),
    }
}

/// `topic-partition` split at its last dash.
pub fn topic_partition(s: &str) -> (String, i32) {
    let (t, p) = s.rsplit_once('-').expect("topic-partition");
    (t.to_owned(), p.parse().expect("partition"))
}
