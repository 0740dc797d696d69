//! Topic creation policy: a check a program that composes its own broker installs
//! with [`crate::node::Node::start_with_policy`], as Kafka's `create.topic.policy.class.name`
//! does (KIP-108). Every topic a client creates, with CreateTopics (validate-only
//! requests too) or by auto-creation, is shown to it first; a refusal is
//! POLICY_VIOLATION with the policy's message. Internal topics the broker creates
//! for itself (`__consumer_offsets`) are not.

use std::collections::BTreeMap;

/// A topic about to be created, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct NewTopic<'a> {
    /// Topic name (already checked to be a legal Kafka name).
    pub name: &'a str,
    /// Number of partitions (broker default already applied).
    pub partitions: i32,
    /// Replication factor (broker default already applied).
    pub replication_factor: i16,
    /// The topic-level config overrides given.
    pub configs: &'a BTreeMap<String, String>,
}

/// Decides whether a topic may be created.
pub trait CreateTopicPolicy: Send + Sync + 'static {
    /// `Ok` to allow `topic`; `Err` with the reason to refuse it.
    fn validate(&self, topic: &NewTopic<'_>) -> Result<(), String>;
}
