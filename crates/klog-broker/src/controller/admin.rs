//! The admin APIs that change cluster metadata, run on the active controller's
//! node: CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
//! IncrementalAlterConfigs, ElectLeaders.
//!
//! Each one turns the Kafka request into calls of this node's controller runtime
//! ([`ControllerHandle`]) and their typed answers into the Kafka response, which goes out
//! once the records are committed and applied here. Any other broker forwards the
//! client's request to this node whole, in an Envelope ([`crate::controller::client`]), and
//! these same handlers answer it ([`AdminHandler`]): the rules live in one place.
//! Topic configs are checked against the broker defaults here
//! ([`crate::config::topic::TopicConfig::strict`]); a [`CreateTopicPolicy`] installed on the node sees
//! every topic a client creates (KIP-108).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use klog_codec::protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use klog_codec::protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use klog_codec::protocol::messages::create_topics_response::CreatableTopicResult;
use klog_codec::protocol::messages::delete_topics_response::DeletableTopicResult;
use klog_codec::protocol::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use klog_codec::protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalAlterResourceResponse;
use klog_codec::protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use klog_codec::protocol::{
    RequestHeader, ResponseError, StrBytes, decode_message, encode_response,
};
use klog_coordinator::OFFSETS_TOPIC;
use klog_coordinator::metadata::{ConfigResource, CreateTopic, MetadataImage};

use crate::config::BrokerConfig;
use crate::config::topic::{self as configs, AlterOp};
use crate::controller::api::AdminHandler;
use crate::controller::runtime::{Answer, ControllerHandle, Refusal, SubmitError};
use crate::metadata::store::MetadataQuorum;
use crate::metadata::store::MetadataStore;
use crate::policy::{CreateTopicPolicy, NewTopic};

/// `resource_type` of a topic in the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;
/// `resource_type` of a broker in the config APIs.
pub const RESOURCE_BROKER: i8 = 4;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A config change's error code and message for its response (0 and none when it
/// went through).
fn outcome(result: Result<(), (i16, String)>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
    }
}

/// Each topic name asked to be deleted, in request order, with its error code
/// from `results` (those refused here and those the controller answered). A name
/// with no result gets UNKNOWN_SERVER_ERROR, never success: nothing says it was
/// deleted.
fn delete_outcomes(names: &[String], results: &[(String, i16)]) -> Vec<(String, i16)> {
    let unknown = code(ResponseError::UnknownServerError);
    names
        .iter()
        .map(|n| {
            let c = results
                .iter()
                .find(|(x, _)| x == n)
                .map_or(unknown, |(_, c)| *c);
            (n.clone(), c)
        })
        .collect()
}

/// The admin handlers of the active controller's node.
pub struct Admin {
    config: BrokerConfig,
    store: Arc<MetadataStore>,
    controller: ControllerHandle,
    quorum: Arc<MetadataQuorum>,
    policy: Option<Box<dyn CreateTopicPolicy>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// A topic to create, checked and with defaults applied, or a refusal.
type Prepared = Result<CreateTopic, (i16, String)>;

impl Admin {
    /// Admin handlers with this node's controller runtime.
    pub fn new(
        config: BrokerConfig,
        store: Arc<MetadataStore>,
        controller: ControllerHandle,
        quorum: Arc<MetadataQuorum>,
        policy: Option<Box<dyn CreateTopicPolicy>>,
    ) -> Self {
        Self {
            config,
            store,
            controller,
            quorum,
            policy,
        }
    }

    /// DescribeQuorum (KIP-595): the metadata quorum as its leader sees it: the
    /// leader, its term (the log's leader epoch), the committed offset, and each
    /// voter's and observer's (broker-only node's) log end offset. Run on the
    /// active controller, which alone knows the followers' progress. From v2
    /// (KIP-853) it also names every voter's controller endpoint.
    pub async fn describe_quorum(&self, req: &DescribeQuorumRequest) -> DescribeQuorumResponse {
        use klog_codec::protocol::messages::describe_quorum_response::{
            PartitionData, ReplicaState, TopicData,
        };
        let q = self.quorum.describe();
        let state = |m: &klog_quorum::MemberDescription| {
            ReplicaState::default()
                .with_replica_id(BrokerId(i32::try_from(m.node_id).unwrap_or(-1)))
                .with_log_end_offset(m.last_log_index.map_or(-1, |i| i as i64 + 1))
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        };
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut d =
                            PartitionData::default().with_partition_index(p.partition_index);
                        if t.topic_name.0.as_str() != klog_quorum::METADATA_TOPIC
                            || p.partition_index != 0
                        {
                            d.error_code = code(ResponseError::UnknownTopicOrPartition);
                            return d;
                        }
                        d.leader_id =
                            BrokerId(q.leader.and_then(|l| i32::try_from(l).ok()).unwrap_or(-1));
                        d.leader_epoch = i32::try_from(q.term).unwrap_or(i32::MAX);
                        d.high_watermark = q.last_applied.map_or(-1, |i| i as i64 + 1);
                        d.current_voters = q.voters.iter().map(state).collect();
                        d.observers = q.learners.iter().map(state).collect();
                        d
                    })
                    .collect();
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        // v2 (KIP-853): every voter's controller endpoint.
        use klog_codec::protocol::messages::describe_quorum_response::{Listener, Node};
        let listener = |host: &str, port: u16| {
            Listener::default()
                .with_name(StrBytes::from_string(
                    self.config.cluster.controller_listener_name.clone(),
                ))
                .with_host(StrBytes::from_string(host.to_owned()))
                .with_port(port)
        };
        let nodes = if self.config.cluster.voters.is_empty() {
            // A one-node quorum of this node.
            let listeners = self
                .config
                .cluster
                .controller_listener
                .map(|a| vec![listener(&a.ip().to_string(), a.port())])
                .unwrap_or_default();
            vec![
                Node::default()
                    .with_node_id(BrokerId(self.config.node_id))
                    .with_listeners(listeners),
            ]
        } else {
            self.config
                .cluster
                .voters
                .iter()
                .map(|v| {
                    Node::default()
                        .with_node_id(BrokerId(v.id))
                        .with_listeners(vec![listener(&v.host, v.port)])
                })
                .collect()
        };
        DescribeQuorumResponse::default()
            .with_topics(topics)
            .with_nodes(nodes)
    }

    /// Whether this node is the active controller now (else forward).
    pub fn is_active(&self) -> bool {
        self.controller.is_active()
    }

    /// The controller's reply once this node's image has its records, or its
    /// refusal (NOT_CONTROLLER when no controller runs here now).
    async fn settle<T>(&self, answer: Result<Answer<T>, SubmitError>) -> Result<T, Refusal> {
        match answer {
            Ok(answer) => {
                // Wait until this node's image has the records (the controller's
                // write returns once they are applied here; this is only a guard).
                self.store
                    .wait_for(answer.offset, std::time::Duration::from_secs(30))
                    .await;
                answer.reply
            }
            Err(e) => Err(Refusal {
                code: code(ResponseError::NotController),
                message: e.to_string(),
            }),
        }
    }

    /// Checks one CreateTopics topic on this side (configs, the policy) and turns it
    /// into the controller's form.
    fn prepare(&self, t: &CreateTopic, internal: bool) -> Prepared {
        configs::TopicConfig::strict(&self.config, &t.configs)
            .map_err(|(k, e)| (code(ResponseError::InvalidConfig), format!("{k}: {e}")))?;
        if let Some(policy) = &self.policy
            && !internal
        {
            let (partitions, replication_factor) = if t.assignments.is_empty() {
                (
                    if t.num_partitions == -1 {
                        self.config.num_partitions
                    } else {
                        t.num_partitions
                    },
                    if t.replication_factor == -1 {
                        self.config.default_replication_factor
                    } else {
                        t.replication_factor
                    },
                )
            } else {
                (
                    t.assignments.len() as i32,
                    t.assignments.first().map_or(0, |(_, r)| r.len() as i16),
                )
            };
            policy
                .validate(&NewTopic {
                    name: &t.name,
                    partitions,
                    replication_factor,
                    configs: &t.configs,
                })
                .map_err(|e| (code(ResponseError::PolicyViolation), e))?;
        }
        Ok(t.clone())
    }

    /// Creates topics through the controller; returns each one's error code and
    /// message (`None` when created).
    pub async fn create(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        internal: bool,
    ) -> Vec<(String, i16, Option<String>)> {
        let mut out: Vec<(String, i16, Option<String>)> = Vec::with_capacity(topics.len());
        let mut send = Vec::new();
        for t in &topics {
            match self.prepare(t, internal) {
                Ok(t) => send.push(t),
                Err((c, m)) => out.push((t.name.clone(), c, Some(m))),
            }
        }
        if !send.is_empty() {
            let answer = self
                .controller
                .create_topics(send.clone(), validate_only)
                .await;
            match self.settle(answer).await {
                Ok(results) => {
                    for r in results {
                        if r.error == 0 && !validate_only {
                            tracing::info!(
                                topic = r.name,
                                partitions = r.num_partitions,
                                replication_factor = r.replication_factor,
                                "created topic"
                            );
                        }
                        out.push((r.name, r.error, r.message));
                    }
                }
                Err(r) => out.extend(
                    send.iter()
                        .map(|t| (t.name.clone(), r.code, Some(r.message.clone()))),
                ),
            }
        }
        // In request order.
        topics
            .iter()
            .map(|t| {
                out.iter()
                    .find(|(n, _, _)| *n == t.name)
                    .cloned()
                    .unwrap_or((
                        t.name.clone(),
                        code(ResponseError::UnknownServerError),
                        None,
                    ))
            })
            .collect()
    }

    /// CreateTopics.
    pub async fn create_topics(&self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        let mut refused: BTreeMap<String, (i16, String)> = BTreeMap::new();
        let mut topics = Vec::new();
        for t in &req.topics {
            let name = t.name.0.as_str().to_owned();
            let mut configs_given = BTreeMap::new();
            for c in &t.configs {
                match &c.value {
                    Some(v) => {
                        configs_given.insert(c.name.as_str().to_owned(), v.as_str().to_owned());
                    }
                    None => {
                        refused.insert(
                            name.clone(),
                            (
                                code(ResponseError::InvalidConfig),
                                format!("{}: null value", c.name.as_str()),
                            ),
                        );
                    }
                }
            }
            if !refused.contains_key(&name) {
                configs::warn_deprecated(&name, configs_given.keys().map(String::as_str));
            }
            topics.push(CreateTopic {
                name,
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect(),
                configs: configs_given,
            });
        }
        let results = self
            .create(
                topics
                    .iter()
                    .filter(|t| !refused.contains_key(&t.name))
                    .cloned()
                    .collect(),
                req.validate_only,
                false,
            )
            .await;
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let mut r = CreatableTopicResult::default().with_name(t.name.clone());
                let outcome = refused
                    .get(name)
                    .map(|(c, m)| (*c, Some(m.clone())))
                    .or_else(|| {
                        results
                            .iter()
                            .find(|(n, _, _)| n == name)
                            .map(|(_, c, m)| (*c, m.clone()))
                    });
                // num_partitions, replication_factor and topic_id are v5+ and v7+
                // fields; the versions served (0-4) leave them at their defaults.
                if let Some((c, m)) = outcome
                    && c != 0
                {
                    r.error_code = c;
                    r.error_message = m.map(StrBytes::from_string);
                }
                r
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    /// DeleteTopics (by name; `__consumer_offsets` cannot be deleted).
    pub async fn delete_topics(&self, req: &DeleteTopicsRequest) -> DeleteTopicsResponse {
        let mut names: Vec<String> = req
            .topic_names
            .iter()
            .map(|n| n.0.as_str().to_owned())
            .collect();
        names.extend(
            req.topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned())),
        );
        let mut results: Vec<(String, i16)> = Vec::new();
        let mut send = Vec::new();
        for n in &names {
            if n == OFFSETS_TOPIC {
                results.push((n.clone(), code(ResponseError::InvalidTopicException)));
            } else {
                send.push(n.clone());
            }
        }
        if !send.is_empty() {
            let answer = self.controller.delete_topics(send.clone()).await;
            match self.settle(answer).await {
                Ok(r) => results.extend(r.into_iter().map(|(n, c, _)| (n, c))),
                Err(r) => results.extend(send.into_iter().map(|n| (n, r.code))),
            }
        }
        let responses = delete_outcomes(&names, &results)
            .into_iter()
            .map(|(n, c)| {
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(StrBytes::from_string(n))))
                    .with_error_code(c)
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    /// CreatePartitions (`__consumer_offsets` cannot grow: groups map to its
    /// partitions by count).
    pub async fn create_partitions(
        &self,
        req: &CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut results = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let name = t.name.0.as_str();
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let outcome = if name == OFFSETS_TOPIC {
                Err((
                    code(ResponseError::InvalidRequest),
                    format!("the partition count of {name} cannot change"),
                ))
            } else {
                let assignments = t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
                let answer = self
                    .controller
                    .create_partitions(name.to_owned(), t.count, assignments, req.validate_only)
                    .await;
                self.settle(answer).await.map_err(|r| (r.code, r.message))
            };
            if let Err((c, m)) = outcome {
                r.error_code = c;
                r.error_message = Some(StrBytes::from_string(m));
            } else if !req.validate_only {
                tracing::info!(topic = name, to = t.count, "added partitions");
            }
            results.push(r);
        }
        CreatePartitionsResponse::default().with_results(results)
    }

    /// Checks a non-topic resource of AlterConfigs / IncrementalAlterConfigs: broker
    /// configs are static in klog, other resource types do not exist.
    fn alter_other_resource(&self, resource_type: i8, name: &str) -> (i16, String) {
        let this_broker = name.is_empty() || name == self.config.node_id.to_string();
        match resource_type {
            RESOURCE_BROKER if this_broker => (
                code(ResponseError::InvalidRequest),
                "broker configs are static in klog: set them in server.properties or with --set"
                    .to_owned(),
            ),
            RESOURCE_BROKER => (
                code(ResponseError::InvalidRequest),
                "broker configs are static in klog: set them in each broker's server.properties"
                    .to_owned(),
            ),
            _ => (
                code(ResponseError::InvalidRequest),
                format!("resource type {resource_type} has no alterable configs"),
            ),
        }
    }

    /// Changes one topic's overrides with `alter` (given the current ones, from
    /// the image): validated whole, then the keys that change are written.
    async fn alter_topic(
        &self,
        image: &MetadataImage,
        name: &str,
        validate_only: bool,
        alter: impl FnOnce(
            &BTreeMap<String, String>,
        ) -> Result<
            (BTreeMap<String, String>, configs::TopicConfig),
            configs::AlterError,
        >,
    ) -> Result<(), (i16, String)> {
        if image.topic(name).is_none() {
            return Err((
                code(ResponseError::UnknownTopicOrPartition),
                format!("topic {name:?} does not exist"),
            ));
        }
        let resource = ConfigResource::Topic(name.to_owned());
        let current = image.configs.get(&resource).cloned().unwrap_or_default();
        let (overrides, _) = alter(&current).map_err(|e| (e.code, e.message))?;
        if validate_only {
            return Ok(());
        }
        let mut changes: Vec<(String, Option<String>)> = current
            .keys()
            .filter(|k| !overrides.contains_key(*k))
            .map(|k| (k.clone(), None))
            .collect();
        changes.extend(
            overrides
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), Some(v.clone()))),
        );
        if changes.is_empty() {
            return Ok(());
        }
        let answer = self.controller.set_configs(resource, changes).await;
        self.settle(answer).await.map_err(|r| (r.code, r.message))
    }

    /// AlterConfigs: replaces a topic's overrides with the entries given.
    pub async fn alter_configs(&self, req: &AlterConfigsRequest) -> AlterConfigsResponse {
        let image = self.store.image();
        let mut responses = Vec::with_capacity(req.resources.len());
        for res in &req.resources {
            let name = res.resource_name.as_str();
            let result = if res.resource_type == RESOURCE_TOPIC {
                let entries: Vec<(String, Option<String>)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str().to_owned(),
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        )
                    })
                    .collect();
                let r = self
                    .alter_topic(&image, name, req.validate_only, |_| {
                        configs::replace_overrides(&self.config, &entries)
                    })
                    .await;
                if r.is_ok() {
                    configs::warn_deprecated(name, entries.iter().map(|(k, _)| k.as_str()));
                }
                r
            } else {
                Err(self.alter_other_resource(res.resource_type, name))
            };
            let (error_code, error_message) = outcome(result);
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(error_code)
                    .with_error_message(error_message),
            );
        }
        AlterConfigsResponse::default().with_responses(responses)
    }

    /// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's
    /// overrides (KIP-339).
    pub async fn incremental_alter_configs(
        &self,
        req: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let image = self.store.image();
        let mut responses = Vec::with_capacity(req.resources.len());
        for res in &req.resources {
            let name = res.resource_name.as_str();
            let result = if res.resource_type == RESOURCE_TOPIC {
                let ops: Result<Vec<configs::AlterEntry>, (i16, String)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        let op = AlterOp::from_code(c.config_operation).ok_or_else(|| {
                            (
                                code(ResponseError::InvalidRequest),
                                format!(
                                    "{}: unknown operation {}",
                                    c.name.as_str(),
                                    c.config_operation
                                ),
                            )
                        })?;
                        Ok((
                            c.name.as_str().to_owned(),
                            op,
                            c.value.as_ref().map(|v| v.as_str().to_owned()),
                        ))
                    })
                    .collect();
                match ops {
                    Ok(ops) => {
                        let r = self
                            .alter_topic(&image, name, req.validate_only, |current| {
                                configs::alter_overrides(&self.config, current, &ops)
                            })
                            .await;
                        if r.is_ok() {
                            configs::warn_deprecated(name, ops.iter().map(|(k, _, _)| k.as_str()));
                        }
                        r
                    }
                    Err(e) => Err(e),
                }
            } else {
                Err(self.alter_other_resource(res.resource_type, name))
            };
            let (error_code, error_message) = outcome(result);
            responses.push(
                IncrementalAlterResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(error_code)
                    .with_error_message(error_message),
            );
        }
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    /// ElectLeaders: preferred (`election_type` 0) or unclean (1) elections.
    pub async fn elect_leaders(&self, req: &ElectLeadersRequest) -> ElectLeadersResponse {
        let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic.0.as_str().to_owned(), *p))
                })
                .collect()
        });
        let unclean = req.election_type == 1;
        let mut resp = ElectLeadersResponse::default();
        let answer = self.controller.elect_leaders(unclean, partitions).await;
        match self.settle(answer).await {
            Ok(results) => {
                let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
                for ((t, p), c) in results {
                    by_topic.entry(t).or_default().push(
                        PartitionResult::default()
                            .with_partition_id(p)
                            .with_error_code(c),
                    );
                }
                resp.replica_election_results = by_topic
                    .into_iter()
                    .map(|(t, partition_result)| {
                        ReplicaElectionResult::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partition_result(partition_result)
                    })
                    .collect();
            }
            Err(r) => resp.error_code = r.code,
        }
        resp
    }

    /// Runs one forwarded request; returns its response frame.
    async fn run(&self, header: RequestHeader, body: Bytes) -> Option<Bytes> {
        macro_rules! answer {
            ($req:ty, $method:ident) => {{
                let req: $req = decode_message(&header, body).ok()?;
                let resp = self.$method(&req).await;
                encode_response(&header, &resp).ok()
            }};
        }
        match ApiKey::try_from(header.api_key).ok()? {
            ApiKey::CreateTopics => answer!(CreateTopicsRequest, create_topics),
            ApiKey::DeleteTopics => answer!(DeleteTopicsRequest, delete_topics),
            ApiKey::CreatePartitions => answer!(CreatePartitionsRequest, create_partitions),
            ApiKey::AlterConfigs => answer!(AlterConfigsRequest, alter_configs),
            ApiKey::IncrementalAlterConfigs => {
                answer!(IncrementalAlterConfigsRequest, incremental_alter_configs)
            }
            ApiKey::ElectLeaders => answer!(ElectLeadersRequest, elect_leaders),
            ApiKey::DescribeQuorum => answer!(DescribeQuorumRequest, describe_quorum),
            _ => None,
        }
    }
}

impl AdminHandler for Admin {
    fn handle_forwarded(
        &self,
        header: RequestHeader,
        body: Bytes,
    ) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        self.run(header, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A topic the controller gave no result for must not be answered with
    /// success (error code 0): the client would believe it deleted.
    #[test]
    fn delete_without_a_result_is_not_success() {
        let names = vec!["a".to_owned(), "b".to_owned(), OFFSETS_TOPIC.to_owned()];
        let results = vec![
            ("a".to_owned(), 0),
            (
                OFFSETS_TOPIC.to_owned(),
                code(ResponseError::InvalidTopicException),
            ),
        ];
        let out = delete_outcomes(&names, &results);
        assert_eq!(
            out,
            vec![
                ("a".to_owned(), 0),
                ("b".to_owned(), code(ResponseError::UnknownServerError)),
                (
                    OFFSETS_TOPIC.to_owned(),
                    code(ResponseError::InvalidTopicException)
                ),
            ]
        );
    }
}
