//! Creating topics from inside the broker (Kafka's `AutoTopicCreationManager`):
//! topics a Metadata or Produce request names that do not exist, when
//! `auto.create.topics.enable` allows it, and internal topics such as
//! `__consumer_offsets`. They are created by the active controller: here, through
//! the [`Admin`] service, when this node is it, else by forwarding a CreateTopics
//! request to it (KIP-590), as a client's would be.

use std::sync::Arc;

use bytes::BytesMut;
use klog_codec::protocol::ResponseError;
use klog_coordinator::metadata::CreateTopic;

use crate::controller::admin::Admin;
use crate::controller::client::ControllerClient;

/// Creates topics through the active controller, here or forwarded.
#[derive(Debug)]
pub struct TopicCreator {
    auto_create_topics: bool,
    /// The admin service, on a controller node (it acts while this node is the
    /// active controller).
    admin: Option<Arc<Admin>>,
    client: Arc<ControllerClient>,
}

impl TopicCreator {
    /// A creator that uses `admin` while this node is the active controller and
    /// forwards through `client` otherwise; `auto_create_topics` is
    /// `auto.create.topics.enable`.
    pub fn new(
        auto_create_topics: bool,
        admin: Option<Arc<Admin>>,
        client: Arc<ControllerClient>,
    ) -> Self {
        Self {
            auto_create_topics,
            admin,
            client,
        }
    }

    /// The admin service when this node is the active controller.
    pub fn active_admin(&self) -> Option<&Arc<Admin>> {
        self.admin.as_ref().filter(|a| a.is_active())
    }

    /// Creates topics that do not exist with the broker defaults (Metadata with
    /// `allow_auto_topic_creation`, `auto.create.topics.enable`), through the
    /// active controller, and waits until they are in this broker's image.
    /// Returns the error code of each topic that could not be created.
    pub async fn auto_create(&self, names: &[String]) -> Vec<(String, i16)> {
        if names.is_empty() || !self.auto_create_topics {
            return Vec::new();
        }
        let topics: Vec<CreateTopic> = names
            .iter()
            .map(|n| CreateTopic {
                name: n.clone(),
                num_partitions: -1,
                replication_factor: -1,
                ..CreateTopic::default()
            })
            .collect();
        self.create_internal(topics, false)
            .await
            .into_iter()
            .filter(|(_, c)| *c != 0 && *c != ResponseError::TopicAlreadyExists.code())
            .collect()
    }

    /// Creates one topic through the active controller, the create-topic policy
    /// not consulted (for programs composing a broker, and benches); the Kafka
    /// error code on refusal.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), i16> {
        let topic = CreateTopic {
            name: name.to_owned(),
            num_partitions: partitions,
            replication_factor,
            ..CreateTopic::default()
        };
        match self.create_internal(vec![topic], true).await.first() {
            Some((_, 0)) => Ok(()),
            Some((_, c)) => Err(*c),
            None => Err(ResponseError::UnknownServerError.code()),
        }
    }

    /// Creates topics through the active controller (here or forwarded);
    /// `internal` topics skip the create-topic policy. Returns each error code.
    pub async fn create_internal(
        &self,
        topics: Vec<CreateTopic>,
        internal: bool,
    ) -> Vec<(String, i16)> {
        if let Some(admin) = self.active_admin() {
            return admin
                .create(topics, false, internal)
                .await
                .into_iter()
                .map(|(n, c, _)| (n, c))
                .collect();
        }
        let new: Vec<klog_client::NewTopic> = topics
            .iter()
            .map(|t| klog_client::NewTopic {
                name: t.name.clone(),
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                configs: t.configs.clone().into_iter().collect(),
            })
            .collect();
        let req = klog_client::admin::create_topics_request(&new, 30_000);
        match self.forward_request(&req, 4).await {
            Ok(r) => r
                .topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.error_code))
                .collect(),
            Err(c) => topics.iter().map(|t| (t.name.clone(), c)).collect(),
        }
    }

    /// Sends `req` at `version` to the active controller in an Envelope, as a
    /// client's request would be forwarded; returns its response, once this
    /// broker's image has the records, or the error code a client would get.
    pub(crate) async fn forward_request<R>(&self, req: &R, version: i16) -> Result<R::Response, i16>
    where
        R: klog_codec::protocol::client::Request,
    {
        let mut frame = BytesMut::new();
        klog_codec::protocol::client::encode_request(&mut frame, 0, None, version, req)
            .map_err(|_| ResponseError::UnknownServerError.code())?;
        // Without the size prefix, as a client's request frame is forwarded.
        let request_frame = frame.freeze().slice(4..);
        let resp = self
            .client
            .forward(request_frame, "")
            .await
            .map_err(|e| e.code())?;
        klog_codec::protocol::client::decode_response::<R>(resp, version)
            .map(|(_, r)| r)
            .map_err(|_| ResponseError::UnknownServerError.code())
    }
}
