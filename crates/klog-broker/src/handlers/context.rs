//! What a handler knows about the request besides its body: the header, who sent
//! it (the connection's session: listener, address, principal), the authorizer to
//! ask, and the connection's stop signal for requests that wait.

use std::net::SocketAddr;

use klog_codec::protocol::RequestHeader;
use tokio::sync::watch;

use crate::security::{Authorizer, Operation, Resource, Session};

/// The per-request context every handler receives (Kafka's `RequestContext`).
#[derive(Clone, Copy)]
pub struct RequestContext<'a> {
    /// The request header (API key and version, correlation id, client id).
    pub header: &'a RequestHeader,
    /// Who sent it: principal, address, listener.
    pub session: &'a Session,
    /// The client's socket address, when known (JoinGroup reports it).
    pub peer: Option<SocketAddr>,
    /// What decides whether the session may do what it asks.
    pub authorizer: &'a dyn Authorizer,
    /// Turns true when the broker stops: requests that wait (Fetch, JoinGroup)
    /// answer at once.
    pub stop: &'a watch::Receiver<bool>,
}

impl std::fmt::Debug for RequestContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("api_key", &self.header.api_key)
            .field("api_version", &self.header.api_version)
            .field("principal", &self.session.principal)
            .field("listener", &self.session.listener)
            .finish_non_exhaustive()
    }
}

impl<'a> RequestContext<'a> {
    /// A context for `header` from `session`.
    pub fn new(
        header: &'a RequestHeader,
        session: &'a Session,
        peer: Option<SocketAddr>,
        authorizer: &'a dyn Authorizer,
        stop: &'a watch::Receiver<bool>,
    ) -> Self {
        Self {
            header,
            session,
            peer,
            authorizer,
            stop,
        }
    }

    /// The request's API version.
    pub fn version(&self) -> i16 {
        self.header.api_version
    }

    /// The client id the request carries (empty when none).
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// Whether the session may perform `operation` on `resource`.
    pub fn allowed(&self, operation: Operation, resource: Resource<'_>) -> bool {
        let allowed = self.authorizer.authorize(self.session, operation, resource);
        if !allowed {
            tracing::debug!(
                principal = %self.session.principal,
                ?operation,
                resource = ?resource,
                api_key = self.header.api_key,
                "denied"
            );
        }
        allowed
    }
}

/// What a direct call of a handler needs to build its [`RequestContext`]: for
/// programs that call handlers without a connection (tests, benches). The session
/// is `User:ANONYMOUS` on the `PLAINTEXT` listener; [`DirectRequest::ctx`] allows
/// everything, [`DirectRequest::ctx_with`] asks a given authorizer.
#[derive(Debug)]
pub struct DirectRequest {
    header: RequestHeader,
    session: Session,
    stop: watch::Receiver<bool>,
    _stop_tx: watch::Sender<bool>,
}

impl DirectRequest {
    /// A request of `api_key` at `version`.
    pub fn new(api_key: klog_codec::protocol::messages::ApiKey, version: i16) -> Self {
        let (stop_tx, stop) = watch::channel(false);
        Self {
            header: RequestHeader {
                api_key: api_key as i16,
                api_version: version,
                correlation_id: 0,
                client_id: None,
            },
            session: Session::anonymous("PLAINTEXT", None),
            stop,
            _stop_tx: stop_tx,
        }
    }

    /// Its context, with everything allowed.
    pub fn ctx(&self) -> RequestContext<'_> {
        self.ctx_with(&crate::security::AllowAll)
    }

    /// Its context, asking `authorizer`.
    pub fn ctx_with<'a>(&'a self, authorizer: &'a dyn Authorizer) -> RequestContext<'a> {
        RequestContext::new(&self.header, &self.session, None, authorizer, &self.stop)
    }

    /// Its header.
    pub fn header(&self) -> &RequestHeader {
        &self.header
    }
}
