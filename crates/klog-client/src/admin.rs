//! The admin client: create, delete, list and describe topics; describe configs;
//! list and describe consumer groups and their lag.
//!
//! CreateTopics and DeleteTopics go to the controller that Metadata names
//! (KAFKA-COMPAT.md trap 5); a NOT_CONTROLLER answer refreshes metadata and retries.
//! ListGroups goes to every broker (each lists the groups it coordinates);
//! DescribeGroups and OffsetFetch go to the group's coordinator (FindCoordinator);
//! lag compares a group's committed offsets with ListOffsets(latest) at each
//! partition's leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use klog_codec::protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use klog_codec::protocol::messages::describe_configs_request::DescribeConfigsResource;
use klog_codec::protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, TopicName,
};
use klog_codec::protocol::{ResponseError, StrBytes};

use klog_codec::protocol::messages::{
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
};

use crate::cluster::{BrokerInfo, ClientConfig, Cluster, TopicInfo};
use crate::conn::Connection;
use crate::consumer::{Offset, TopicPartition};
use crate::consumer_protocol;
use crate::error::{AdminError, ClientError};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions (-1: the broker's `num.partitions`).
    pub partitions: i32,
    /// Replication factor (-1: the broker's `default.replication.factor`).
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `segment.bytes`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and replication factor 1.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: 1,
            configs: Vec::new(),
        }
    }

    /// Sets the replication factor.
    pub fn with_replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    /// Adds a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// One config entry of a topic or broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Whether it cannot be changed at run time.
    pub read_only: bool,
    /// Whether it is the default (config source 5) rather than set explicitly.
    pub is_default: bool,
    /// Whether the value is hidden.
    pub is_sensitive: bool,
}

/// What to describe configs of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigResource<'a> {
    /// A topic.
    Topic(&'a str),
    /// A broker, by id.
    Broker(i32),
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups; empty for groups that only
    /// commit offsets).
    pub protocol_type: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id it connected with.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
    /// Its assignment, decoded when the group uses the consumer protocol.
    pub assignment: Vec<TopicPartition>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// The chosen protocol (the assignor's name for consumer groups).
    pub protocol: String,
    /// Members, sorted by member id.
    pub members: Vec<GroupMember>,
}

/// A group's progress on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset (`None`: nothing committed).
    pub committed: Option<i64>,
    /// The partition's log end offset (high watermark).
    pub log_end: i64,
    /// `log_end - committed` (`None` without a commit).
    pub lag: Option<i64>,
    /// The member that owns the partition now, if any.
    pub member_id: Option<String>,
}

/// The admin client.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// An admin client; connects lazily.
    pub fn new(config: ClientConfig) -> Result<Self, AdminError> {
        let timeout = config.request_timeout;
        Ok(Self {
            cluster: Cluster::new(config)?,
            timeout,
        })
    }

    async fn controller(&self) -> Result<Arc<Connection>, ClientError> {
        self.cluster.refresh(Some(&[])).await?;
        let id = self.cluster.controller();
        if id >= 0 {
            self.cluster.connection(id).await
        } else {
            self.cluster.any_connection().await
        }
    }

    /// Runs `op` against the controller, retrying retriable failures (a moved
    /// controller, a restarting broker) until the request timeout.
    async fn with_controller<T, F, Fut>(&self, op: F) -> Result<T, AdminError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, AdminError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let result = match self.controller().await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Err(
                    e @ (AdminError::Client(_)
                    | AdminError::Topic {
                        error: ResponseError::NotController,
                        ..
                    }),
                ) if e.is_retriable() && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Creates topics. Returns one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_controller(|conn| {
                let request = request.clone();
                async move {
                    let r = conn
                        .send(&request)
                        .map_err(ClientError::from)?
                        .await
                        .map_err(ClientError::from)?;
                    if let Some(t) = r
                        .topics
                        .iter()
                        .find(|t| t.error_code == ResponseError::NotController.code())
                    {
                        return Err(AdminError::Topic {
                            topic: t.name.0.to_string(),
                            error: ResponseError::NotController,
                            message: None,
                        });
                    }
                    Ok(r)
                }
            })
            .await?;
        Ok(topics
            .iter()
            .map(|t| {
                let r = response
                    .topics
                    .iter()
                    .find(|r| r.name.0.as_str() == t.name)
                    .ok_or_else(|| AdminError::UnknownTopic(t.name.clone()))?;
                topic_result(&t.name, r.error_code, r.error_message.as_ref())
            })
            .collect())
    }

    /// Deletes topics. Returns one result per topic, in order.
    pub async fn delete_topics(
        &self,
        names: &[String],
    ) -> Result<Vec<Result<(), AdminError>>, AdminError> {
        let timeout_ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topic_names(
                names
                    .iter()
                    .map(|n| TopicName(StrBytes::from_string(n.clone())))
                    .collect(),
            );
        let response = self
            .with_controller(|conn| {
                let request = request.clone();
                async move {
                    let r = conn
                        .send(&request)
                        .map_err(ClientError::from)?
                        .await
                        .map_err(ClientError::from)?;
                    if r.responses
                        .iter()
                        .any(|t| t.error_code == ResponseError::NotController.code())
                    {
                        return Err(AdminError::Topic {
                            topic: String::new(),
                            error: ResponseError::NotController,
                            message: None,
                        });
                    }
                    Ok(r)
                }
            })
            .await?;
        Ok(names
            .iter()
            .map(|n| {
                let r = response
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().is_some_and(|rn| rn.0.as_str() == n))
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))?;
                topic_result(n, r.error_code, r.error_message.as_ref())
            })
            .collect())
    }

    /// Names of all topics, sorted (internal ones included).
    pub async fn list_topics(&self) -> Result<Vec<String>, AdminError> {
        let response = self.cluster.refresh(None).await?;
        let mut names: Vec<String> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Metadata of these topics (partitions, leaders, replicas, ISR).
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>, AdminError> {
        // Describing must not create topics as a side effect.
        let response = self.cluster.refresh_no_create(names).await?;
        names
            .iter()
            .map(|n| {
                let t = response
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|tn| tn.0.as_str() == n))
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))?;
                if t.error_code == ResponseError::UnknownTopicOrPartition.code() {
                    return Err(AdminError::UnknownTopic(n.clone()));
                }
                topic_result(n, t.error_code, None)?;
                self.cluster
                    .topic(n)
                    .map(|t| (*t).clone())
                    .ok_or_else(|| AdminError::UnknownTopic(n.clone()))
            })
            .collect()
    }

    /// The brokers of the cluster, sorted by id.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>, AdminError> {
        self.cluster.refresh(Some(&[])).await?;
        Ok(self.cluster.brokers())
    }

    /// The configs of a topic or broker (all of them when `keys` is `None`).
    pub async fn describe_configs(
        &self,
        resource: ConfigResource<'_>,
        keys: Option<&[String]>,
    ) -> Result<Vec<ConfigEntry>, AdminError> {
        let (resource_type, name, target) = match resource {
            // Kafka's ConfigResource.Type: TOPIC = 2, BROKER = 4.
            ConfigResource::Topic(t) => (2i8, t.to_owned(), None),
            ConfigResource::Broker(id) => (4i8, id.to_string(), Some(id)),
        };
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configuration_keys(keys.map(|ks| {
                    ks.iter()
                        .map(|k| StrBytes::from_string(k.clone()))
                        .collect()
                })),
        ]);
        let conn = match target {
            Some(id) => {
                self.cluster.refresh(Some(&[])).await?;
                self.cluster.connection(id).await?
            }
            None => self.cluster.any_connection().await?,
        };
        let response = conn
            .send(&request)
            .map_err(ClientError::from)?
            .await
            .map_err(ClientError::from)?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::UnknownTopic(name.clone()))?;
        topic_result(&name, result.error_code, result.error_message.as_ref())?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                is_default: c.config_source == 5,
                is_sensitive: c.is_sensitive,
            })
            .collect())
    }
}

impl Admin {
    /// The connection to `group`'s coordinator.
    async fn group_coordinator(&self, group: &str) -> Result<Arc<Connection>, ClientError> {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let conn = self.cluster.any_connection().await?;
        let response = conn.send(&request)?.await?;
        if let Some(e) = ClientError::broker("FindCoordinator", response.error_code, None) {
            return Err(e);
        }
        self.cluster.refresh(Some(&[])).await?;
        self.cluster.connection(response.node_id.0).await
    }

    /// Runs `op` against `group`'s coordinator, retrying retriable failures (a
    /// coordinator loading its offsets, a moved coordinator) until the timeout.
    async fn with_group_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T, AdminError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let result = match self.group_coordinator(group).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(self.cluster.config.backoff(attempt)).await;
                }
                other => return other.map_err(AdminError::from),
            }
        }
    }

    /// Every group of the cluster (asking each broker), sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, AdminError> {
        self.cluster.refresh(Some(&[])).await?;
        let mut out: Vec<GroupListing> = Vec::new();
        for broker in self.cluster.brokers() {
            let conn = self.cluster.connection(broker.node_id).await?;
            let response = conn
                .send(&ListGroupsRequest::default())
                .map_err(ClientError::from)?
                .await
                .map_err(ClientError::from)?;
            if let Some(e) = ClientError::broker("ListGroups", response.error_code, None) {
                return Err(e.into());
            }
            out.extend(response.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes a group: state, protocol and members with their assignments.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, AdminError> {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = self
            .with_group_coordinator(group, |conn| {
                let request = request.clone();
                async move {
                    let r = conn.send(&request)?.await?;
                    let g = r.groups.into_iter().next().ok_or(ClientError::Broker {
                        api: "DescribeGroups",
                        error: ResponseError::UnknownServerError,
                        message: Some("empty response".to_owned()),
                    })?;
                    if let Some(e) = ClientError::broker("DescribeGroups", g.error_code, None) {
                        return Err(e);
                    }
                    Ok(g)
                }
            })
            .await?;
        let consumer = response.protocol_type.as_str() == "consumer";
        let mut members: Vec<GroupMember> = response
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    // An undecodable assignment is shown as none rather than
                    // failing the whole description.
                    consumer_protocol::decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: response.group_id.0.to_string(),
            state: response.group_state.to_string(),
            protocol_type: response.protocol_type.to_string(),
            protocol: response.protocol_data.to_string(),
            members,
        })
    }

    /// The group's committed offsets (every partition it has committed), sorted.
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64)>, AdminError> {
        // topics = null: all partitions with a committed offset (OffsetFetch v2+).
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(None);
        let response = self
            .with_group_coordinator(group, |conn| {
                let request = request.clone();
                async move {
                    let r = conn.send(&request)?.await?;
                    if let Some(e) = ClientError::broker("OffsetFetch", r.error_code, None) {
                        return Err(e);
                    }
                    Ok(r)
                }
            })
            .await?;
        let mut out: Vec<(TopicPartition, i64)> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
                    .map(|p| {
                        (
                            TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        )
                    })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Lag per partition, like `kafka-consumer-groups.sh --describe`: every
    /// partition the group committed or a member owns, with the committed offset,
    /// the log end offset and their difference.
    pub async fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>, AdminError> {
        let description = self.describe_group(group).await?;
        let committed: std::collections::BTreeMap<TopicPartition, i64> =
            self.group_offsets(group).await?.into_iter().collect();
        let mut owners: std::collections::BTreeMap<TopicPartition, Option<String>> =
            committed.keys().map(|tp| (tp.clone(), None)).collect();
        for m in &description.members {
            for tp in &m.assignment {
                owners.insert(tp.clone(), Some(m.member_id.clone()));
            }
        }
        let mut out = Vec::with_capacity(owners.len());
        for (tp, member_id) in owners {
            let log_end = crate::consumer::list_offset(&self.cluster, &tp, Offset::End).await?;
            let c = committed.get(&tp).copied();
            out.push(PartitionLag {
                lag: c.map(|c| (log_end - c).max(0)),
                committed: c,
                log_end,
                member_id,
                partition: tp,
            });
        }
        Ok(out)
    }
}

fn topic_result(topic: &str, code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(AdminError::Topic {
            topic: topic.to_owned(),
            error,
            message: message.map(|m| m.to_string()),
        }),
    }
}
