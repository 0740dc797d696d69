//! DescribeConfigs: topic and broker configs with their sources, synonyms and documentation.

use klog_codec::protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use klog_codec::protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use klog_codec::protocol::{ResponseError, StrBytes};

use crate::config::topic::{self as configs, ConfigEntry};
use klog_coordinator::metadata::ConfigResource;

use super::{Handlers, RequestContext, code};
use crate::security::{Operation, Resource};

impl Handlers {
    /// DescribeConfigs for topics (resource type 2) and this broker (type 4): every
    /// config with its value, source and flags; synonyms when asked (v1+), type and
    /// documentation from v3. Needs DESCRIBE_CONFIGS on the topic
    /// (TOPIC_AUTHORIZATION_FAILED) or the cluster for a broker
    /// (CLUSTER_AUTHORIZATION_FAILED).
    pub fn describe_configs(
        &self,
        ctx: &RequestContext<'_>,
        req: &DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let version = ctx.version();
        let image = self.store.image();
        let results = req
            .resources
            .iter()
            .map(|res| {
                let name = res.resource_name.as_str();
                let mut r = DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                let entries = match res.resource_type {
                    RESOURCE_TOPIC
                        if !ctx.allowed(Operation::DescribeConfigs, Resource::topic(name)) =>
                    {
                        r.error_code = code(ResponseError::TopicAuthorizationFailed);
                        Vec::new()
                    }
                    RESOURCE_BROKER
                        if !ctx.allowed(Operation::DescribeConfigs, Resource::cluster()) =>
                    {
                        r.error_code = code(ResponseError::ClusterAuthorizationFailed);
                        Vec::new()
                    }
                    RESOURCE_TOPIC => match image.topic(name) {
                        Some(_) => configs::topic_entries(
                            &self.config,
                            &image
                                .configs
                                .get(&ConfigResource::Topic(name.to_owned()))
                                .cloned()
                                .unwrap_or_default(),
                        ),
                        None => {
                            r.error_code = code(ResponseError::UnknownTopicOrPartition);
                            Vec::new()
                        }
                    },
                    RESOURCE_BROKER if self.is_this_broker(name) => {
                        configs::broker_entries(&self.config)
                    }
                    RESOURCE_BROKER => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        r.error_message = Some(StrBytes::from_string(format!(
                            "this is broker {}, not {name}",
                            self.config.node_id
                        )));
                        Vec::new()
                    }
                    _ => {
                        r.error_code = code(ResponseError::InvalidRequest);
                        r.error_message = Some(StrBytes::from_static_str(
                            "only topic and broker configs exist",
                        ));
                        Vec::new()
                    }
                };
                let wanted = res.configuration_keys.as_ref();
                r.configs = entries
                    .into_iter()
                    .filter(|e| wanted.is_none_or(|w| w.iter().any(|k| k.as_str() == e.name)))
                    .map(|e| {
                        describe_entry(e, req.include_synonyms, req.include_documentation, version)
                    })
                    .collect();
                r
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    fn is_this_broker(&self, name: &str) -> bool {
        name.is_empty() || name == self.config.node_id.to_string()
    }
}

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// DescribeConfigs resource type of a broker.
const RESOURCE_BROKER: i8 = 4;

/// One DescribeConfigs entry on the wire. Fields a version lacks stay at their
/// defaults (the message crate refuses to encode them otherwise).
fn describe_entry(
    e: ConfigEntry,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(false);
    if synonyms {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source as i8)
            })
            .collect();
    }
    if version >= 3 {
        r.config_type = e.ty as i8;
        if documentation {
            r.documentation = Some(StrBytes::from_static_str(e.doc));
        }
    }
    r
}
