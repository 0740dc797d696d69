//! The controller side of the node (Kafka's `QuorumController`, `ControllerApis`,
//! `ForwardingManager`, `BrokerLifecycleManager`, `AutoTopicCreationManager`):
//! the controller runtime around the sans-IO controller, the client that reaches
//! the active controller (here or forwarded), the admin service, auto-creation,
//! the broker's lifecycle, and the controller listener's APIs.

pub mod admin;
pub mod api;
pub mod auto_create;
pub mod client;
pub mod id_allocator;
pub mod lifecycle;
pub mod runtime;
