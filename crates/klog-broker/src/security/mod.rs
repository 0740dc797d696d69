//! Who is asking, and whether they may: the principal a connection authenticated
//! as and the [`Authorizer`] seam every handler asks with an (operation, resource)
//! pair, as Kafka's `KafkaPrincipal` and `org.apache.kafka.server.authorizer`.
//!
//! ```text
//!  connection (listener, peer, principal) ──► RequestContext ──► handler
//!                                                 │ authorize(operation, resource)
//!                                                 ▼
//!                                            dyn Authorizer ──► allowed: bool
//! ```
//!
//! Today every connection is `User:ANONYMOUS` (no TLS or SASL yet) and the
//! node's authorizer is [`AllowAll`]; the handlers already ask it what Kafka's
//! handlers ask, with Kafka's operations and resource types, so authenticated
//! principals and the ACL authorizer plug in here without the handlers changing.
//! The table of API -> (operation, resource) is in `docs/architecture.md`.
//!
//! [`acl`] holds Kafka's standard authorizer as a pure layer: ACL bindings and
//! filters with Kafka's wire codes, an index of bindings, and
//! [`acl::StandardAuthorizer`], which decides from the bindings it is given. It
//! does no I/O; storing bindings in the metadata log and feeding them in is the
//! node's job (not wired yet).
//!
//! This module is a leaf of the crate's layers (L0): it imports nothing else from
//! the crate.

pub mod acl;

use std::fmt;
use std::net::IpAddr;

/// An authenticated identity: a type (`User`) and a name, written `User:alice`
/// (Kafka's `KafkaPrincipal`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The principal type; Kafka's only built-in type is `User`.
    pub kind: String,
    /// The name.
    pub name: String,
}

impl Principal {
    /// `User:ANONYMOUS`, the principal of a connection that did not authenticate.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// `User:<name>`.
    pub fn user(name: &str) -> Self {
        Self {
            kind: "User".to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// An operation a request performs, with Kafka's codes (`AclOperation`). A request
/// always names one concrete operation; bindings and filters use
/// [`acl::AclOperation`], which adds `ALL` and the token operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// Read a topic, use a group.
    Read = 3,
    /// Write to a topic.
    Write = 4,
    /// Create topics.
    Create = 5,
    /// Delete topics, records, groups.
    Delete = 6,
    /// Alter a topic or the cluster (partitions, elections).
    Alter = 7,
    /// Describe a topic, group or the cluster.
    Describe = 8,
    /// Inter-broker requests (replica fetches).
    ClusterAction = 9,
    /// Describe configs.
    DescribeConfigs = 10,
    /// Alter configs.
    AlterConfigs = 11,
    /// Idempotent produce (InitProducerId without a transactional id).
    IdempotentWrite = 12,
}

impl Operation {
    /// Kafka's wire code (`AclOperation`).
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// The type of a resource an ACL protects, with Kafka's codes (`ResourceType`).
///
/// Kafka's `ANY` (1) exists only in filters, where it is
/// [`acl::AclBindingFilter::resource_type`] `None`; `UNKNOWN` (0) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ResourceType {
    /// A topic.
    Topic = 2,
    /// A consumer group.
    Group = 3,
    /// The cluster (one resource, named `kafka-cluster`).
    Cluster = 4,
    /// A transactional id.
    TransactionalId = 5,
    /// A delegation token (KIP-48).
    DelegationToken = 6,
    /// A user, for the token operations of KIP-373.
    User = 7,
}

impl ResourceType {
    /// Every resource type, in code order.
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The type with Kafka's wire code `code`; `None` for `UNKNOWN` (0), `ANY` (1)
    /// and codes this broker does not know.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Kafka's name: `TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`,
    /// `DELEGATION_TOKEN`, `USER`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
            ResourceType::DelegationToken => "DELEGATION_TOKEN",
            ResourceType::User => "USER",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of the one cluster resource, as Kafka names it.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A resource a request touches: its type and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The type.
    pub kind: ResourceType,
    /// The name.
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    /// The topic `name`.
    pub fn topic(name: &'a str) -> Self {
        Self {
            kind: ResourceType::Topic,
            name,
        }
    }

    /// The group `name`.
    pub fn group(name: &'a str) -> Self {
        Self {
            kind: ResourceType::Group,
            name,
        }
    }

    /// The transactional id `name`.
    pub fn transactional_id(name: &'a str) -> Self {
        Self {
            kind: ResourceType::TransactionalId,
            name,
        }
    }

    /// The cluster.
    pub fn cluster() -> Self {
        Self {
            kind: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }
}

/// Who is asking: the principal, the client's address, and the listener the
/// request came in on (Kafka's `AuthorizableRequestContext`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The authenticated principal.
    pub principal: Principal,
    /// The client's address, when known.
    pub host: Option<IpAddr>,
    /// The name of the listener the connection was accepted on.
    pub listener: String,
}

impl Session {
    /// An anonymous session on `listener`.
    pub fn anonymous(listener: &str, host: Option<IpAddr>) -> Self {
        Self {
            principal: Principal::anonymous(),
            host,
            listener: listener.to_owned(),
        }
    }
}

/// Decides whether a session may perform an operation on a resource (Kafka's
/// `Authorizer.authorize`). Called on the request path, once per resource of a
/// request: an implementation must not block.
pub trait Authorizer: Send + Sync + fmt::Debug {
    /// Whether `session` may perform `operation` on `resource`.
    fn authorize(&self, session: &Session, operation: Operation, resource: Resource<'_>) -> bool;
}

/// The authorizer of a broker with no ACLs configured: everything is allowed
/// (Kafka without `authorizer.class.name`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &Session, _: Operation, _: Resource<'_>) -> bool {
        true
    }
}
