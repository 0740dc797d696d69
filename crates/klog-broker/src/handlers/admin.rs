//! Admin requests that change metadata: run by the active controller, here or forwarded to it whole (KIP-590).

use bytes::{Bytes, BytesMut};
use klog_codec::protocol::RequestHeader;
use klog_codec::protocol::messages::CreateTopicsRequest;

use crate::controller::api::AdminHandler;
use klog_codec::protocol::messages::CreateTopicsResponse;
use klog_codec::protocol::parse_request_header;

use super::Handlers;

impl Handlers {
    /// CreateTopics, run by the active controller (here, or forwarded to it).
    pub async fn create_topics(&self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        if let Some(admin) = self.creator.active_admin() {
            return admin.create_topics(req).await;
        }
        match self.creator.forward_request(req, 4).await {
            Ok(r) => r,
            Err(c) => CreateTopicsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        klog_codec::protocol::messages::create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        }
    }

    /// An admin request that changes metadata (a [`super::Route::Forwarded`] API): run
    /// here when this node is the active controller, else forwarded whole to it.
    /// `frame` is the request as read, without its size prefix.
    pub async fn admin_request(
        &self,
        header: &RequestHeader,
        frame: Bytes,
        peer: &str,
    ) -> Option<Bytes> {
        if let Some(admin) = self.creator.active_admin() {
            let (_, at) = parse_request_header(&frame).ok()?;
            return admin
                .handle_forwarded(header.clone(), frame.slice(at..))
                .await;
        }
        match self.client.forward(frame, peer).await {
            Ok(data) => {
                let mut out = BytesMut::with_capacity(data.len() + 4);
                out.extend_from_slice(&(data.len() as i32).to_be_bytes());
                out.extend_from_slice(&data);
                Some(out.freeze())
            }
            Err(e) => {
                tracing::debug!(error = %e, api_key = header.api_key, "no controller for an admin request");
                None
            }
        }
    }
}
