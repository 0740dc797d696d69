//! Metadata and DescribeCluster: brokers, the controller id clients are given, and topics from the image.

use klog_codec::protocol::messages::describe_cluster_response::DescribeClusterBroker;
use klog_codec::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use klog_codec::protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use klog_codec::protocol::{ResponseError, StrBytes};

use crate::topics::{self};
use klog_coordinator::metadata::MetadataImage;

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// Metadata, from the image: the unfenced brokers, this broker as controller, and
    /// each topic's partitions with their real leaders, leader epochs, replicas,
    /// ISR and offline replicas. Topics asked for that do not exist are created
    /// first when the request and `auto.create.topics.enable` allow it.
    ///
    /// Authorization as Kafka's: a topic is listed only with DESCRIBE on it (asked
    /// for by name without it: TOPIC_AUTHORIZATION_FAILED; all topics: left out),
    /// and auto-creation needs CREATE on the cluster or the topic.
    pub async fn metadata(
        &self,
        ctx: &RequestContext<'_>,
        req: &MetadataRequest,
    ) -> MetadataResponse {
        let version = ctx.version();
        let describable = |name: &str| ctx.allowed(Operation::Describe, Resource::topic(name));
        let creatable = |name: &str| {
            ctx.allowed(Operation::Create, Resource::cluster())
                || ctx.allowed(Operation::Create, Resource::topic(name))
        };
        let allow_create = version < 4 || req.allow_auto_topic_creation;
        let mut refused = Vec::new();
        if let Some(list) = &req.topics
            && allow_create
        {
            let image = self.store.image();
            let missing: Vec<String> = list
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|n| n.0.as_str())
                .filter(|n| topics::is_valid_topic_name(n) && image.topic(n).is_none())
                .filter(|n| describable(n) && creatable(n))
                .map(str::to_owned)
                .collect();
            refused = self.auto_create(&missing).await;
        }
        let image = self.store.image();
        let brokers: Vec<MetadataResponseBroker> = self
            .live_brokers(&image)
            .into_iter()
            .map(|(id, host, port, rack)| {
                let mut m = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port));
                if version >= 1 {
                    m.rack = rack.map(StrBytes::from_string);
                }
                m
            })
            .collect();
        let topics: Vec<MetadataResponseTopic> = match &req.topics {
            None => image
                .topics
                .keys()
                .filter(|name| describable(name))
                .map(|name| topic_metadata(&image, name, version))
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|name| {
                    let name = name.0.as_str();
                    if !describable(name) {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                            .with_error_code(code(ResponseError::TopicAuthorizationFailed))
                    } else if let Some((_, c)) = refused.iter().find(|(n, _)| n == name) {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                            .with_error_code(*c)
                    } else if topics::is_valid_topic_name(name) {
                        topic_metadata(&image, name, version)
                    } else {
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                            .with_error_code(code(ResponseError::InvalidTopicException))
                    }
                })
                .collect(),
        };
        let controller = self.client_controller_id(brokers.iter().map(|b| b.node_id.0));
        let mut resp = MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(controller))
            .with_topics(topics);
        if version >= 2 {
            resp.cluster_id = Some(StrBytes::from_string(self.cluster_id.clone()));
        }
        resp
    }

    /// DescribeCluster: every live broker and, as the controller, the same id as
    /// Metadata (this broker when it is listed). Asking for
    /// controller endpoints (v1 `endpoint_type` 2) gets UNSUPPORTED_ENDPOINT_TYPE, as
    /// from a Kafka broker. Needs DESCRIBE on the cluster
    /// (CLUSTER_AUTHORIZATION_FAILED otherwise); authorized operations are not
    /// reported.
    pub fn describe_cluster(
        &self,
        ctx: &RequestContext<'_>,
        req: &DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        let version = ctx.version();
        let mut resp = DescribeClusterResponse::default();
        if !ctx.allowed(Operation::Describe, Resource::cluster()) {
            resp.error_code = code(ResponseError::ClusterAuthorizationFailed);
            if version >= 1 {
                resp.endpoint_type = req.endpoint_type;
            }
            return resp;
        }
        if version >= 1 {
            resp.endpoint_type = req.endpoint_type;
            if req.endpoint_type != 1 {
                resp.error_code = code(ResponseError::UnsupportedEndpointType);
                return resp;
            }
        }
        let image = self.store.image();
        let brokers: Vec<DescribeClusterBroker> = self
            .live_brokers(&image)
            .into_iter()
            .map(|(id, host, port, rack)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
                    .with_rack(rack.map(StrBytes::from_string))
            })
            .collect();
        let controller = self.client_controller_id(brokers.iter().map(|b| b.broker_id.0));
        resp.with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_controller_id(BrokerId(controller))
            .with_brokers(brokers)
    }

    /// The unfenced brokers with the address clients reach them at (their
    /// `inter.broker.listener.name` listener): id, host, port, rack.
    fn live_brokers(&self, image: &MetadataImage) -> Vec<(i32, String, u16, Option<String>)> {
        let listener = &self.config.cluster.inter_broker_listener_name;
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let e = b
                    .registration
                    .endpoints
                    .iter()
                    .find(|e| &e.name == listener)
                    .or(b.registration.endpoints.first())?;
                Some((
                    b.registration.id,
                    e.host.clone(),
                    e.port,
                    b.registration.rack.clone(),
                ))
            })
            .collect()
    }

    /// The controller id that Metadata and DescribeCluster tell clients, among the
    /// brokers `listed` in the same response: this broker when it is listed (it
    /// forwards admin requests to the active controller; Kafka's KRaft brokers
    /// name a random live broker), else the active controller when listed, else
    /// the lowest listed id, -1 when none is. Not the active controller first:
    /// clients keep the id until their next refresh (librdkafka's admin client for
    /// minutes), and after a crash of the active controller they would wait on a
    /// dead node. A client never gets an id it has no address for.
    fn client_controller_id(&self, listed: impl Iterator<Item = i32> + Clone) -> i32 {
        let own = self.config.node_id;
        match self.client.controller_id() {
            _ if listed.clone().any(|id| id == own) => own,
            Some(active) if listed.clone().any(|id| id == active) => active,
            _ => listed.min().unwrap_or(-1),
        }
    }
}

/// One topic of a Metadata response, from the image: UNKNOWN_TOPIC_OR_PARTITION
/// if it does not exist; a partition without a leader gets LEADER_NOT_AVAILABLE,
/// and replicas on fenced brokers are listed as offline (v5+).
fn topic_metadata(image: &MetadataImage, name: &str, version: i16) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
        .with_is_internal(name == klog_coordinator::OFFSETS_TOPIC);
    let Some(t) = image.topic(name) else {
        return base.with_error_code(code(ResponseError::UnknownTopicOrPartition));
    };
    let mut base = base;
    if version >= 10 {
        base.topic_id = crate::controller::client::uuid_of(t.id);
    }
    base.with_partitions(
        t.partitions
            .iter()
            .map(|(index, p)| {
                let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
                let mut m = MetadataResponsePartition::default()
                    .with_partition_index(*index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr));
                if p.leader == klog_replication::NO_LEADER {
                    m.error_code = code(ResponseError::LeaderNotAvailable);
                }
                if version >= 7 {
                    m.leader_epoch = p.leader_epoch;
                }
                if version >= 5 {
                    let offline: Vec<i32> = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
                        .collect();
                    m.offline_replicas = ids(&offline);
                }
                m
            })
            .collect(),
    )
}
