//! Kafka's standard authorizer as a pure layer: ACL bindings, the filters of
//! DescribeAcls and DeleteAcls, an index of bindings, and [`StandardAuthorizer`],
//! which decides each (principal, host, operation, resource) from the bindings it
//! was given, with the semantics of Kafka's KRaft authorizer
//! (`org.apache.kafka.metadata.authorizer.StandardAuthorizer`, its data in
//! `StandardAuthorizerData.java`) and of the ZooKeeper-era `AclAuthorizer.scala`
//! before it.
//!
//! ```text
//!  bindings (from the metadata log, later) ──replace / add / remove──► StandardAuthorizer
//!                                                                         │ snapshot: Arc<AclIndex>
//!  handler ── authorize(session, operation, resource) ──────────────────► decide ──► Decision ──► bool
//! ```
//!
//! It does no I/O, reads no clock and spawns nothing: the node stores bindings in
//! the metadata log and feeds them in (a later step), and the handlers already ask
//! through the [`Authorizer`] trait.
//!
//! # Evaluation order
//!
//! For a session (principal, host), an operation and a resource (type, name):
//!
//! 1. A principal listed in `super.users` is allowed everything, bindings unread.
//! 2. The bindings *on the resource* are gathered, whoever they are for: those of
//!    the resource's type whose pattern is the literal name, the literal wildcard
//!    `*`, or a prefix of the name (`PREFIXED`).
//! 3. If there are none, `allow.everyone.if.no.acl.found` decides (default: deny).
//!    "No ACL found" means no binding on the resource at all: a binding for
//!    another principal on the resource is enough to deny everyone else.
//! 4. Of those, a binding *applies* when its principal is the session's (or
//!    `User:*`), its host is the session's address (or `*`), and its operation is
//!    the requested one, `ALL`, or, for ALLOW bindings only, one that implies it:
//!    READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!    DESCRIBE_CONFIGS. (So ALLOW READ lets a principal describe the topic, but
//!    DENY READ does not stop it describing; DENY ALL denies everything.)
//! 5. Any applying DENY denies, whatever allows: DENY wins.
//! 6. Otherwise an applying ALLOW allows; if none applies, the request is denied.
//!
//! This is `StandardAuthorizerData.authorize` / `findAclRule` / `findResult` and
//! `AclAuthorizer.authorize` (`isEmptyAclAndAuthorizeAllowed`, `matchingAcls`,
//! `aclsAllowAccess`), restated; no Kafka code is copied.
//!
//! # Differences from Kafka, deliberate
//!
//! - Hosts are compared as addresses, not strings: an ACL host `::1` matches a
//!   client at `0:0:0:0:0:0:0:1` (Java's spelling), and an IPv4 client seen on a
//!   dual-stack socket as `::ffff:10.0.0.1` matches the host `10.0.0.1`. A host
//!   that is neither `*` nor an IP address never matches, as in Kafka (which
//!   compares with the client's textual address). A session with no known address
//!   matches only `*`.
//! - There is no "loading" state: Kafka's `StandardAuthorizer` refuses requests
//!   (`AuthorizerNotReadyException`) until the metadata log's ACLs are loaded. The
//!   node must not install this authorizer before it has fed the bindings in.
//!
//! # Wire codes
//!
//! Every enum carries Kafka's codes (`AclOperation`, `AclPermissionType`,
//! `PatternType`, `ResourceType`). `UNKNOWN` (0) is not a value here: decoding it,
//! or a code this broker does not know, gives `None`, and the request is refused
//! as Kafka refuses an unknown component. `ANY` (1) exists only in filters, where
//! it is `None` ([`ANY_CODE`]); `MATCH` (2) only in [`PatternFilter`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::security::{
    Authorizer, CLUSTER_NAME, Operation, Principal, Resource, ResourceType, Session,
};

/// The resource name (with pattern [`PatternType::Literal`]) and host that match
/// any resource name or host.
pub const WILDCARD: &str = "*";

/// The principal that matches every principal (Kafka's `WILDCARD_PRINCIPAL`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Kafka's code for `ANY` in a filter field (operation, permission, resource type,
/// pattern type); here such a field is `None` (or [`PatternFilter::Any`]).
pub const ANY_CODE: i8 = 1;

/// Kafka's code for `UNKNOWN`, which no request may carry.
pub const UNKNOWN_CODE: i8 = 0;

/// The `authorizer.class.name` that turns this authorizer on, Kafka's own.
pub const AUTHORIZER_CLASS_NAME: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The config key listing principals allowed everything, separated by `;`.
pub const SUPER_USERS_CONFIG: &str = "super.users";

/// The config key saying what happens to a resource without any binding.
pub const ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG: &str = "allow.everyone.if.no.acl.found";

/// A name that is not one of Kafka's names for an ACL enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    /// What was being parsed (`operation`, `permission`, ...).
    pub kind: &'static str,
    /// The name given.
    pub name: String,
}

/// Implements `from_code`, `FromStr` (Kafka's names, case-insensitive, as Kafka's
/// `fromString`) and `Display` from a type's `ALL`, `code` and `name`.
macro_rules! wire_names {
    ($t:ty, $kind:literal) => {
        impl $t {
            /// The value with Kafka's wire code `code`; `None` for `UNKNOWN` and
            /// codes this broker does not know (and for `ANY` where it is no value).
            pub fn from_code(code: i8) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.code() == code)
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| UnknownName {
                        kind: $kind,
                        name: s.to_owned(),
                    })
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// The operation of a binding or a filter, with Kafka's codes (`AclOperation`):
/// the request [`Operation`]s plus `ALL` and the delegation-token operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AclOperation {
    /// Every operation.
    All = 2,
    /// READ.
    Read = 3,
    /// WRITE.
    Write = 4,
    /// CREATE.
    Create = 5,
    /// DELETE.
    Delete = 6,
    /// ALTER.
    Alter = 7,
    /// DESCRIBE.
    Describe = 8,
    /// CLUSTER_ACTION.
    ClusterAction = 9,
    /// DESCRIBE_CONFIGS.
    DescribeConfigs = 10,
    /// ALTER_CONFIGS.
    AlterConfigs = 11,
    /// IDEMPOTENT_WRITE.
    IdempotentWrite = 12,
    /// CREATE_TOKENS (KIP-373).
    CreateTokens = 13,
    /// DESCRIBE_TOKENS (KIP-373).
    DescribeTokens = 14,
}

impl AclOperation {
    /// Every operation, in code order.
    pub const ALL: [AclOperation; 13] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
        AclOperation::CreateTokens,
        AclOperation::DescribeTokens,
    ];

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name (`READ`, `DESCRIBE_CONFIGS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
            AclOperation::CreateTokens => "CREATE_TOKENS",
            AclOperation::DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// Whether an ALLOW binding for `self` allows `requested`: the same operation,
    /// `ALL`, or one that implies it (Kafka's `IMPLIES_DESCRIBE`: READ, WRITE,
    /// DELETE, ALTER imply DESCRIBE; `IMPLIES_DESCRIBE_CONFIGS`: ALTER_CONFIGS
    /// implies DESCRIBE_CONFIGS).
    pub fn allows(self, requested: Operation) -> bool {
        self == AclOperation::All
            || self == AclOperation::from(requested)
            || match requested {
                Operation::Describe => matches!(
                    self,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                Operation::DescribeConfigs => self == AclOperation::AlterConfigs,
                _ => false,
            }
    }

    /// Whether a DENY binding for `self` denies `requested`: the same operation or
    /// `ALL`. Implication is for ALLOW only (`StandardAuthorizerData.findResult`):
    /// DENY READ does not deny DESCRIBE.
    pub fn denies(self, requested: Operation) -> bool {
        self == AclOperation::All || self == AclOperation::from(requested)
    }
}

wire_names!(AclOperation, "operation");

impl From<Operation> for AclOperation {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Read => AclOperation::Read,
            Operation::Write => AclOperation::Write,
            Operation::Create => AclOperation::Create,
            Operation::Delete => AclOperation::Delete,
            Operation::Alter => AclOperation::Alter,
            Operation::Describe => AclOperation::Describe,
            Operation::ClusterAction => AclOperation::ClusterAction,
            Operation::DescribeConfigs => AclOperation::DescribeConfigs,
            Operation::AlterConfigs => AclOperation::AlterConfigs,
            Operation::IdempotentWrite => AclOperation::IdempotentWrite,
        }
    }
}

impl TryFrom<AclOperation> for Operation {
    type Error = AclOperation;

    /// The request operation with the same code; `ALL` and the token operations
    /// (which no request of this broker performs yet) give themselves back.
    fn try_from(op: AclOperation) -> Result<Self, AclOperation> {
        Ok(match op {
            AclOperation::Read => Operation::Read,
            AclOperation::Write => Operation::Write,
            AclOperation::Create => Operation::Create,
            AclOperation::Delete => Operation::Delete,
            AclOperation::Alter => Operation::Alter,
            AclOperation::Describe => Operation::Describe,
            AclOperation::ClusterAction => Operation::ClusterAction,
            AclOperation::DescribeConfigs => Operation::DescribeConfigs,
            AclOperation::AlterConfigs => Operation::AlterConfigs,
            AclOperation::IdempotentWrite => Operation::IdempotentWrite,
            AclOperation::All | AclOperation::CreateTokens | AclOperation::DescribeTokens => {
                return Err(op);
            }
        })
    }
}

/// Whether a binding allows or denies, with Kafka's codes (`AclPermissionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// DENY: wins over every ALLOW.
    Deny = 2,
    /// ALLOW.
    Allow = 3,
}

impl Permission {
    /// Both permissions, in code order.
    pub const ALL: [Permission; 2] = [Permission::Deny, Permission::Allow];

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name, `DENY` or `ALLOW`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }
}

wire_names!(Permission, "permission");

/// How a binding's resource name is matched, with Kafka's codes (`PatternType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PatternType {
    /// The name exactly; the name `*` matches every name (the wildcard).
    Literal = 3,
    /// Every name that starts with the binding's name (KIP-290).
    Prefixed = 4,
}

impl PatternType {
    /// Both pattern types, in code order.
    pub const ALL: [PatternType; 2] = [PatternType::Literal, PatternType::Prefixed];

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name, `LITERAL` or `PREFIXED`.
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

wire_names!(PatternType, "pattern type");

/// The pattern type of a filter, with Kafka's codes (`PatternType`, KIP-290).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PatternFilter {
    /// Any pattern type; a name given must equal the binding's name.
    Any = 1,
    /// The bindings that would apply to the given name: literal with that name,
    /// the literal wildcard `*`, and prefixed ones that start it.
    Match = 2,
    /// Literal bindings only; a name given must equal the binding's name (so `*`
    /// finds only wildcard bindings).
    Literal = 3,
    /// Prefixed bindings only; a name given must equal the binding's name.
    Prefixed = 4,
}

impl PatternFilter {
    /// Every pattern filter, in code order.
    pub const ALL: [PatternFilter; 4] = [
        PatternFilter::Any,
        PatternFilter::Match,
        PatternFilter::Literal,
        PatternFilter::Prefixed,
    ];

    /// Kafka's wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name: `ANY`, `MATCH`, `LITERAL`, `PREFIXED`.
    pub fn name(self) -> &'static str {
        match self {
            PatternFilter::Any => "ANY",
            PatternFilter::Match => "MATCH",
            PatternFilter::Literal => "LITERAL",
            PatternFilter::Prefixed => "PREFIXED",
        }
    }
}

wire_names!(PatternFilter, "pattern filter");

impl From<PatternType> for PatternFilter {
    fn from(p: PatternType) -> Self {
        match p {
            PatternType::Literal => PatternFilter::Literal,
            PatternType::Prefixed => PatternFilter::Prefixed,
        }
    }
}

impl FromStr for ResourceType {
    type Err = UnknownName;

    /// Kafka's name (`TOPIC`, `TRANSACTIONAL_ID`, ...), case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                kind: "resource type",
                name: s.to_owned(),
            })
    }
}

/// Why CreateAcls refuses a binding (Kafka answers INVALID_REQUEST). Values that
/// Kafka also refuses (UNKNOWN or ANY in a binding, a MATCH pattern) cannot be
/// represented here, so decoding refuses them first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAcl {
    /// The resource name is empty (`AclControlManager.validateNewAcl`).
    #[error("resource name should not be empty")]
    EmptyResourceName,
    /// A CLUSTER binding not named `kafka-cluster` (`AclApis.handleCreateAcls`).
    #[error("the only valid name for the CLUSTER resource is {CLUSTER_NAME}")]
    ClusterName,
    /// The principal is not `<type>:<name>` (`SecurityUtils.parseKafkaPrincipal`).
    #[error("invalid principal {0:?}: expected <type>:<name>")]
    Principal(String),
    /// The host is empty; it must be `*` or an address.
    #[error("host should not be empty")]
    EmptyHost,
}

/// One ACL: who (principal, host) may or may not (permission) do what
/// (operation) to which resources (type, pattern, name). Kafka's `AclBinding`
/// (a `ResourcePattern` and an `AccessControlEntry`), flattened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The type of the resources.
    pub resource_type: ResourceType,
    /// The name, a prefix of names, or (literal) `*` for every name.
    pub resource_name: String,
    /// How `resource_name` is matched.
    pub pattern: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// The client's address, or `*` for every host.
    pub host: String,
    /// The operation; `ALL` for every one.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Whether CreateAcls may store this binding, with Kafka's checks (see
    /// [`InvalidAcl`]). The authorizer itself applies whatever it is given.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        if self.resource_name.is_empty() {
            return Err(InvalidAcl::EmptyResourceName);
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(InvalidAcl::ClusterName);
        }
        match self.principal.split_once(':') {
            Some((kind, _)) if !kind.is_empty() => {}
            _ => return Err(InvalidAcl::Principal(self.principal.clone())),
        }
        if self.host.is_empty() {
            return Err(InvalidAcl::EmptyHost);
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `kind`/`name`: the
    /// same type, and the literal name, the literal wildcard, or a prefix of it.
    pub fn covers(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
            }
    }
}

impl fmt::Display for AclBinding {
    /// `ALLOW READ for User:alice from * on TOPIC:LITERAL:orders`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} for {} from {} on {}:{}:{}",
            self.permission,
            self.operation,
            self.principal,
            self.host,
            self.resource_type,
            self.pattern,
            self.resource_name
        )
    }
}

/// Which bindings DescribeAcls lists and DeleteAcls removes: Kafka's
/// `AclBindingFilter` (`ResourcePatternFilter.matches` and
/// `AccessControlEntryFilter.matches`). `None` is Kafka's `ANY` (or a null
/// name, principal or host) and matches everything; other fields match exactly,
/// except the resource name under [`PatternFilter::Match`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBindingFilter {
    /// The resource type, or any.
    pub resource_type: Option<ResourceType>,
    /// The resource name, or any.
    pub resource_name: Option<String>,
    /// Which pattern types match, and how the name is compared.
    pub pattern: PatternFilter,
    /// The principal (compared as written), or any.
    pub principal: Option<String>,
    /// The host (compared as written), or any.
    pub host: Option<String>,
    /// The operation, or any. `ALL` matches only bindings for `ALL`.
    pub operation: Option<AclOperation>,
    /// The permission, or any.
    pub permission: Option<Permission>,
}

impl AclBindingFilter {
    /// The filter that matches every binding.
    pub const ANY: AclBindingFilter = AclBindingFilter {
        resource_type: None,
        resource_name: None,
        pattern: PatternFilter::Any,
        principal: None,
        host: None,
        operation: None,
        permission: None,
    };

    /// Whether `binding` passes this filter.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.resource_type
            .is_none_or(|t| t == binding.resource_type)
            && self.matches_pattern(binding)
            && self
                .principal
                .as_deref()
                .is_none_or(|p| p == binding.principal)
            && self.host.as_deref().is_none_or(|h| h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }

    fn matches_pattern(&self, binding: &AclBinding) -> bool {
        let pattern_ok = match self.pattern {
            PatternFilter::Any | PatternFilter::Match => true,
            PatternFilter::Literal => binding.pattern == PatternType::Literal,
            PatternFilter::Prefixed => binding.pattern == PatternType::Prefixed,
        };
        let Some(name) = self.resource_name.as_deref() else {
            return pattern_ok;
        };
        pattern_ok
            && match self.pattern {
                PatternFilter::Match => binding.covers(binding.resource_type, name),
                PatternFilter::Any | PatternFilter::Literal | PatternFilter::Prefixed => {
                    name == binding.resource_name
                }
            }
    }
}

impl From<&AclBinding> for AclBindingFilter {
    /// The filter that matches exactly `binding` (for removing one binding, as a
    /// metadata record's removal will).
    fn from(b: &AclBinding) -> Self {
        AclBindingFilter {
            resource_type: Some(b.resource_type),
            resource_name: Some(b.resource_name.clone()),
            pattern: b.pattern.into(),
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: Some(b.operation),
            permission: Some(b.permission),
        }
    }
}

/// Why a request was allowed or denied: Kafka's matching rules (`SuperUser`,
/// `MatchingAcl`, `DefaultAllow`/`DefaultDeny`), for audit logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The principal is in `super.users`: allowed.
    SuperUser,
    /// A DENY binding applies: denied, whatever allows.
    DenyAcl,
    /// An ALLOW binding applies and no DENY does: allowed.
    AllowAcl,
    /// The resource has bindings but none applies: denied.
    NoMatchingAcl,
    /// The resource has no binding at all: `allow.everyone.if.no.acl.found`
    /// decides.
    NoAclFound {
        /// The setting's value, so the outcome.
        allowed: bool,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        match self {
            Decision::SuperUser | Decision::AllowAcl => true,
            Decision::DenyAcl | Decision::NoMatchingAcl => false,
            Decision::NoAclFound { allowed } => allowed,
        }
    }
}

impl fmt::Display for Decision {
    /// `allow (acl)`, `deny (no acl found)`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_allowed() { "allow" } else { "deny" };
        let why = match self {
            Decision::SuperUser => "super user",
            Decision::DenyAcl | Decision::AllowAcl => "acl",
            Decision::NoMatchingAcl => "no matching acl",
            Decision::NoAclFound { .. } => "no acl found",
        };
        write!(f, "{verdict} ({why})")
    }
}

/// The static settings of [`StandardAuthorizer`] (Kafka's broker configs of the
/// same names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found` (default false): whether a resource
    /// without any binding is open to everyone.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses a `super.users` value: principals separated by `;`, blanks trimmed.
    pub fn parse_super_users(value: &str) -> BTreeSet<String> {
        value
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Whether the principal string of a binding (`User:alice`) names `p`, without
/// allocating: Kafka splits a principal at its first `:`.
fn names_principal(written: &str, p: &Principal) -> bool {
    written
        .strip_prefix(p.kind.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
        == Some(p.name.as_str())
}

/// A binding's entry, as the index keeps it under its resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    principal: String,
    /// The host as written, so two bindings differing only in the spelling of an
    /// address stay two rules (removing one leaves the other).
    host: String,
    /// The host parsed (canonical form); `None` for `*` and for non-addresses.
    host_ip: Option<IpAddr>,
    operation: AclOperation,
    permission: Permission,
}

impl Rule {
    fn of(b: &AclBinding) -> Self {
        Rule {
            principal: b.principal.clone(),
            host: b.host.clone(),
            host_ip: b.host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()),
            operation: b.operation,
            permission: b.permission,
        }
    }

    /// Whether this rule applies to the principal at `host` doing `op`
    /// (`StandardAuthorizerData.findResult`), given that its resource pattern
    /// covers the resource.
    fn applies(&self, principal: &Principal, host: Option<IpAddr>, op: Operation) -> bool {
        (self.principal == WILDCARD_PRINCIPAL || names_principal(&self.principal, principal))
            && (self.host == WILDCARD || (host.is_some() && self.host_ip == host))
            && match self.permission {
                Permission::Allow => self.operation.allows(op),
                Permission::Deny => self.operation.denies(op),
            }
    }
}

/// The rules of one resource type, by name.
#[derive(Debug, Clone, Default)]
struct TypeIndex {
    /// Literal bindings by exact name; the wildcard is the name `*`.
    literal: HashMap<String, Vec<Rule>>,
    /// Prefixed bindings by prefix, ordered so that the prefixes of a name are
    /// found with a few range lookups ([`PrefixesOf`]).
    prefixed: BTreeMap<String, Vec<Rule>>,
}

impl TypeIndex {
    fn names(&mut self, pattern: PatternType) -> &mut dyn NameMap {
        match pattern {
            PatternType::Literal => &mut self.literal,
            PatternType::Prefixed => &mut self.prefixed,
        }
    }

    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.prefixed.is_empty()
    }
}

/// The one operation the index needs from both maps: the rule list of a name.
trait NameMap {
    fn rules_mut(&mut self, name: &str) -> &mut Vec<Rule>;
    fn drop_if_empty(&mut self, name: &str);
}

impl NameMap for HashMap<String, Vec<Rule>> {
    fn rules_mut(&mut self, name: &str) -> &mut Vec<Rule> {
        self.entry(name.to_owned()).or_default()
    }

    fn drop_if_empty(&mut self, name: &str) {
        if self.get(name).is_some_and(Vec::is_empty) {
            self.remove(name);
        }
    }
}

impl NameMap for BTreeMap<String, Vec<Rule>> {
    fn rules_mut(&mut self, name: &str) -> &mut Vec<Rule> {
        self.entry(name.to_owned()).or_default()
    }

    fn drop_if_empty(&mut self, name: &str) {
        if self.get(name).is_some_and(Vec::is_empty) {
            self.remove(name);
        }
    }
}

/// The values of a map whose keys are prefixes of `name` (the empty key
/// included), longest first, visiting only those keys and at most one more per
/// key skipped: the greatest key not above the current bound is either a prefix
/// of `name` (a match; shorter prefixes sort below the match minus its last
/// character) or shares a shorter prefix with `name` (every remaining prefix is
/// at most that shared part). The bound strictly shortens each step. Kafka's
/// `checkSection` walks its sorted set the same way.
struct PrefixesOf<'m, 'n, V> {
    map: &'m BTreeMap<String, V>,
    name: &'n str,
    /// Every key still to visit is at most this; `None` when done.
    bound: Option<&'n str>,
}

impl<'m, 'n, V> PrefixesOf<'m, 'n, V> {
    fn new(map: &'m BTreeMap<String, V>, name: &'n str) -> Self {
        PrefixesOf {
            map,
            name,
            bound: Some(name),
        }
    }
}

/// The length of the longest common prefix of `a` and `b`, at a character
/// boundary of `b`.
fn common_prefix_len(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

impl<'m, V> Iterator for PrefixesOf<'m, '_, V> {
    type Item = &'m V;

    fn next(&mut self) -> Option<&'m V> {
        loop {
            let bound = self.bound?;
            let Some((key, value)) = self
                .map
                .range::<str, _>((Bound::Unbounded, Bound::Included(bound)))
                .next_back()
            else {
                self.bound = None;
                return None;
            };
            let common = common_prefix_len(key, self.name);
            if common == key.len() {
                // `key` is a prefix of the name; next, its strict prefixes.
                self.bound = match key.char_indices().next_back() {
                    Some((last, _)) => self.name.get(..last),
                    None => None,
                };
                return Some(value);
            }
            self.bound = self.name.get(..common);
        }
    }
}

/// What the bindings say, before super users and the no-ACL default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Deny,
    Allow,
    NoMatch,
    NoAcl,
}

/// An immutable set of bindings with the index the request path reads: by
/// resource type, then literal names in a hash map and prefixes in a B-tree.
/// Mutated only as a private copy before it is published (see
/// [`StandardAuthorizer`]).
#[derive(Debug, Clone, Default)]
struct AclIndex {
    /// Every binding, once: the source of DescribeAcls and DeleteAcls.
    bindings: BTreeSet<AclBinding>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

impl AclIndex {
    fn from_bindings(bindings: impl IntoIterator<Item = AclBinding>) -> Self {
        let mut index = AclIndex::default();
        for b in bindings {
            index.insert(b);
        }
        index
    }

    /// Adds `b`; false if it was already there (Kafka's CreateAcls of an existing
    /// binding succeeds without a second copy).
    fn insert(&mut self, b: AclBinding) -> bool {
        if self.bindings.contains(&b) {
            return false;
        }
        self.by_type
            .entry(b.resource_type)
            .or_default()
            .names(b.pattern)
            .rules_mut(&b.resource_name)
            .push(Rule::of(&b));
        self.bindings.insert(b);
        true
    }

    /// Removes and returns the bindings `filter` matches, in binding order.
    fn remove_matching(&mut self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        let removed: Vec<AclBinding> = self.matching(filter).cloned().collect();
        for b in &removed {
            self.bindings.remove(b);
            if let Some(t) = self.by_type.get_mut(&b.resource_type) {
                let names = t.names(b.pattern);
                let rule = Rule::of(b);
                names.rules_mut(&b.resource_name).retain(|r| *r != rule);
                names.drop_if_empty(&b.resource_name);
                if t.is_empty() {
                    self.by_type.remove(&b.resource_type);
                }
            }
        }
        removed
    }

    fn matching<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(|b| filter.matches(b))
    }

    /// The rule lists whose pattern covers the resource: literal name, wildcard,
    /// prefixes.
    fn covering<'a>(&'a self, resource: Resource<'a>) -> impl Iterator<Item = &'a Vec<Rule>> {
        let t = self.by_type.get(&resource.kind);
        let literal = t.and_then(|t| t.literal.get(resource.name));
        let wildcard = t
            .filter(|_| resource.name != WILDCARD)
            .and_then(|t| t.literal.get(WILDCARD));
        let prefixed = t
            .map(|t| PrefixesOf::new(&t.prefixed, resource.name))
            .into_iter()
            .flatten();
        literal.into_iter().chain(wildcard).chain(prefixed)
    }

    /// Steps 2 and 4-6 of the module's evaluation order.
    fn verdict(
        &self,
        principal: &Principal,
        host: Option<IpAddr>,
        op: Operation,
        resource: Resource<'_>,
    ) -> Verdict {
        let mut found = false;
        let mut allowed = false;
        for rules in self.covering(resource) {
            found |= !rules.is_empty();
            for rule in rules {
                if rule.applies(principal, host, op) {
                    match rule.permission {
                        Permission::Deny => return Verdict::Deny,
                        Permission::Allow => allowed = true,
                    }
                }
            }
        }
        match (allowed, found) {
            (true, _) => Verdict::Allow,
            (false, true) => Verdict::NoMatch,
            (false, false) => Verdict::NoAcl,
        }
    }
}

/// Kafka's standard authorizer over the bindings it is given (see the
/// [module docs](self) for the evaluation order).
///
/// The request path reads an immutable snapshot: it clones an `Arc` under a read
/// lock held for that clone only, and evaluates without a lock. A change copies
/// the current index, edits the copy and swaps it in; changes are serialized
/// among themselves and never wait for readers to finish evaluating. A change
/// costs O(bindings) (ACL changes are rare); a decision costs a hash lookup, one
/// for the wildcard, and O(log n) B-tree steps per prefix binding that applies.
pub struct StandardAuthorizer {
    config: AuthorizerConfig,
    current: RwLock<Arc<AclIndex>>,
    /// Serializes changes, so none is lost between the copy and the swap.
    writer: Mutex<()>,
}

impl fmt::Debug for StandardAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardAuthorizer")
            .field("config", &self.config)
            .field("bindings", &self.snapshot().bindings.len())
            .finish()
    }
}

impl StandardAuthorizer {
    /// An authorizer with `config` and no bindings.
    pub fn new(config: AuthorizerConfig) -> Self {
        StandardAuthorizer {
            config,
            current: RwLock::new(Arc::new(AclIndex::default())),
            writer: Mutex::new(()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    fn snapshot(&self) -> Arc<AclIndex> {
        // A panic elsewhere while holding the lock cannot leave a half-made index
        // behind (the swap is one assignment), so a poisoned lock is still good.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn update<R>(&self, change: impl FnOnce(&mut AclIndex) -> R) -> R {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = AclIndex::clone(&self.snapshot());
        let out = change(&mut next);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        out
    }

    /// Whether `principal` is a super user.
    pub fn is_super_user(&self, principal: &Principal) -> bool {
        self.config
            .super_users
            .iter()
            .any(|s| names_principal(s, principal))
    }

    /// The decision on `session` performing `operation` on `resource`, with the
    /// rule that made it.
    pub fn decide(
        &self,
        session: &Session,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Decision {
        if self.is_super_user(&session.principal) {
            return Decision::SuperUser;
        }
        let host = session.host.map(|h| h.to_canonical());
        match self
            .snapshot()
            .verdict(&session.principal, host, operation, resource)
        {
            Verdict::Deny => Decision::DenyAcl,
            Verdict::Allow => Decision::AllowAcl,
            Verdict::NoMatch => Decision::NoMatchingAcl,
            Verdict::NoAcl => Decision::NoAclFound {
                allowed: self.config.allow_everyone_if_no_acl_found,
            },
        }
    }

    /// Replaces every binding (a metadata snapshot loaded).
    pub fn replace(&self, bindings: impl IntoIterator<Item = AclBinding>) {
        let index = AclIndex::from_bindings(bindings);
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }

    /// Adds a binding; false if it was already there.
    pub fn add(&self, binding: AclBinding) -> bool {
        self.update(|index| index.insert(binding))
    }

    /// Removes the bindings `filter` matches (DeleteAcls) and returns them.
    pub fn remove(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.update(|index| index.remove_matching(filter))
    }

    /// The bindings `filter` matches (DescribeAcls), in a stable order.
    pub fn describe(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.snapshot().matching(filter).cloned().collect()
    }

    /// How many bindings there are.
    pub fn len(&self) -> usize {
        self.snapshot().bindings.len()
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Authorizer for StandardAuthorizer {
    fn authorize(&self, session: &Session, operation: Operation, resource: Resource<'_>) -> bool {
        self.decide(session, operation, resource).is_allowed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: AclOperation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.to_owned(),
            pattern,
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation: op,
            permission,
        }
    }

    fn prefixed(name: &str) -> AclBinding {
        binding(
            ResourceType::Topic,
            name,
            PatternType::Prefixed,
            "User:a",
            AclOperation::Read,
            Permission::Allow,
        )
    }

    /// The prefix keys `PrefixesOf` visits, longest first.
    fn prefixes<'a>(map: &'a BTreeMap<String, String>, name: &str) -> Vec<&'a str> {
        PrefixesOf::new(map, name).map(String::as_str).collect()
    }

    fn key_map(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter()
            .map(|k| ((*k).to_owned(), (*k).to_owned()))
            .collect()
    }

    #[test]
    fn prefix_walk_finds_every_prefix_longest_first_and_skips_the_rest() {
        // Kafka's example in StandardAuthorizerData.findAclRule, and neighbours.
        let map = key_map(&[
            "gar",
            "foobar",
            "foob",
            "foo",
            "fb",
            "fa",
            "f",
            "eeee",
            "foobarbaz",
            "fooc",
            "",
        ]);
        assert_eq!(prefixes(&map, "foobar"), ["foobar", "foob", "foo", "f", ""]);
        assert_eq!(prefixes(&map, "fz"), ["f", ""]);
        assert_eq!(prefixes(&map, "a"), [""]);
        assert_eq!(prefixes(&map, ""), [""]);
        let no_empty = key_map(&["b", "ba", "bb"]);
        assert!(prefixes(&no_empty, "a").is_empty());
        assert!(prefixes(&no_empty, "c").is_empty());
        assert_eq!(prefixes(&no_empty, "bab"), ["ba", "b"]);
    }

    #[test]
    fn prefix_walk_respects_multibyte_characters() {
        // "é" is two bytes; a byte-wise common prefix of "é" and "è" stops inside
        // the character and must back off to a boundary.
        let map = key_map(&["é", "è", "aé", "a"]);
        assert_eq!(prefixes(&map, "èx"), ["è"]);
        assert_eq!(prefixes(&map, "aéé"), ["aé", "a"]);
        assert_eq!(prefixes(&map, "aè"), ["a"]);
    }

    #[test]
    fn prefix_walk_agrees_with_a_scan_of_every_key() {
        let keys = [
            "", "a", "ab", "abc", "abd", "b", "ba", "bab", "c", "ca", "cab", "é", "éa",
        ];
        let map = key_map(&keys);
        for name in [
            "", "a", "abc", "abcd", "abx", "b", "bab", "babc", "bb", "cab", "cb", "d", "éab", "z",
        ] {
            let mut want: Vec<&str> = keys
                .iter()
                .copied()
                .filter(|k| name.starts_with(k))
                .collect();
            want.sort_by_key(|k| std::cmp::Reverse(k.len()));
            assert_eq!(prefixes(&map, name), want, "name {name:?}");
        }
    }

    #[test]
    fn insert_is_idempotent_and_remove_cleans_the_index() {
        let mut index = AclIndex::default();
        assert!(index.insert(prefixed("pay-")));
        assert!(!index.insert(prefixed("pay-")));
        assert!(index.insert(prefixed("pay-eu-")));
        assert_eq!(index.bindings.len(), 2);
        assert_eq!(index.by_type[&ResourceType::Topic].prefixed.len(), 2);

        let removed = index.remove_matching(&AclBindingFilter::from(&prefixed("pay-")));
        assert_eq!(removed, [prefixed("pay-")]);
        let topics = &index.by_type[&ResourceType::Topic];
        assert_eq!(topics.prefixed.keys().collect::<Vec<_>>(), ["pay-eu-"]);

        assert_eq!(index.remove_matching(&AclBindingFilter::ANY).len(), 1);
        assert!(index.bindings.is_empty());
        assert!(
            index.by_type.is_empty(),
            "no empty lists or types left behind"
        );
    }

    #[test]
    fn two_spellings_of_one_address_stay_two_bindings() {
        let mut a = prefixed("t");
        a.host = "::1".to_owned();
        let mut b = a.clone();
        b.host = "0:0:0:0:0:0:0:1".to_owned();
        let mut index = AclIndex::from_bindings([a.clone(), b.clone()]);
        index.remove_matching(&AclBindingFilter::from(&a));
        let rules = &index.by_type[&ResourceType::Topic].prefixed["t"];
        assert_eq!(rules, &vec![Rule::of(&b)]);
    }

    #[test]
    fn covering_gathers_literal_wildcard_and_prefixes_of_the_type_only() {
        let index = AclIndex::from_bindings([
            binding(
                ResourceType::Topic,
                "orders",
                PatternType::Literal,
                "User:a",
                AclOperation::Read,
                Permission::Allow,
            ),
            binding(
                ResourceType::Topic,
                "*",
                PatternType::Literal,
                "User:b",
                AclOperation::Read,
                Permission::Allow,
            ),
            binding(
                ResourceType::Topic,
                "ord",
                PatternType::Prefixed,
                "User:c",
                AclOperation::Read,
                Permission::Allow,
            ),
            binding(
                ResourceType::Topic,
                "orders-",
                PatternType::Prefixed,
                "User:d",
                AclOperation::Read,
                Permission::Allow,
            ),
            binding(
                ResourceType::Topic,
                "order",
                PatternType::Literal,
                "User:e",
                AclOperation::Read,
                Permission::Allow,
            ),
            binding(
                ResourceType::Group,
                "orders",
                PatternType::Literal,
                "User:f",
                AclOperation::Read,
                Permission::Allow,
            ),
        ]);
        let who: Vec<&str> = index
            .covering(Resource::topic("orders"))
            .flatten()
            .map(|r| r.principal.as_str())
            .collect();
        assert_eq!(who, ["User:a", "User:b", "User:c"]);
        assert_eq!(
            index.covering(Resource::transactional_id("orders")).count(),
            0
        );
    }

    #[test]
    fn names_round_trip_and_codes_are_kafkas() {
        for op in AclOperation::ALL {
            assert_eq!(op.name().parse::<AclOperation>(), Ok(op));
            assert_eq!(AclOperation::from_code(op.code()), Some(op));
        }
        assert_eq!(
            "describe_configs".parse::<AclOperation>(),
            Ok(AclOperation::DescribeConfigs)
        );
        assert_eq!(AclOperation::from_code(UNKNOWN_CODE), None);
        assert_eq!(AclOperation::from_code(ANY_CODE), None);
        assert_eq!(AclOperation::All.code(), 2);
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(AclOperation::DescribeTokens.code(), 14);
        assert_eq!((Permission::Deny.code(), Permission::Allow.code()), (2, 3));
        assert_eq!(
            (PatternType::Literal.code(), PatternType::Prefixed.code()),
            (3, 4)
        );
        assert_eq!(
            (PatternFilter::Any.code(), PatternFilter::Match.code()),
            (1, 2)
        );
        assert_eq!(ResourceType::from_code(ANY_CODE), None);
        assert_eq!(ResourceType::from_code(7), Some(ResourceType::User));
        assert_eq!(
            "transactional_id".parse::<ResourceType>(),
            Ok(ResourceType::TransactionalId)
        );
        for op in [
            Operation::Read,
            Operation::Describe,
            Operation::IdempotentWrite,
        ] {
            assert_eq!(AclOperation::from(op).code(), op.code());
            assert_eq!(Operation::try_from(AclOperation::from(op)), Ok(op));
        }
        assert_eq!(
            Operation::try_from(AclOperation::All),
            Err(AclOperation::All)
        );
    }

    #[test]
    fn validate_refuses_what_create_acls_refuses() {
        let ok = prefixed("t");
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: fn(&mut AclBinding)| {
            let mut b = ok.clone();
            f(&mut b);
            b.validate()
        };
        assert_eq!(
            with(|b| b.resource_name.clear()),
            Err(InvalidAcl::EmptyResourceName)
        );
        assert_eq!(
            with(|b| b.principal = "alice".to_owned()),
            Err(InvalidAcl::Principal("alice".to_owned()))
        );
        assert_eq!(
            with(|b| b.principal = ":alice".to_owned()),
            Err(InvalidAcl::Principal(":alice".to_owned()))
        );
        assert_eq!(with(|b| b.host.clear()), Err(InvalidAcl::EmptyHost));
        assert_eq!(
            with(|b| {
                b.resource_type = ResourceType::Cluster;
                b.resource_name = "other".to_owned();
            }),
            Err(InvalidAcl::ClusterName)
        );
    }

    #[test]
    fn readers_keep_their_snapshot_while_a_change_is_published() {
        let auth = StandardAuthorizer::new(AuthorizerConfig::default());
        auth.add(prefixed("a"));
        let before = auth.snapshot();
        auth.add(prefixed("b"));
        assert_eq!(before.bindings.len(), 1);
        assert_eq!(auth.len(), 2);
        auth.replace([]);
        assert!(auth.is_empty());
    }
}
