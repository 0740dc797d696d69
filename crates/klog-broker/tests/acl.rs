//! The standard authorizer (`klog_broker::security::acl`) against Kafka's rules:
//! a table of cases in `tests/testdata/acl.txt`, and properties (DENY wins;
//! the index decides as a scan of every binding would).
//!
//! The table is a script (format in `klog_test_support::script`); commands:
//!
//! ```text
//! authorizer [super=User:a;User:b] [no_acl=allow|deny]   a new authorizer, no bindings
//! allow|deny principal= op= <resource> [host=*] [pattern=literal|prefixed]
//!                                         add a binding (prints only a duplicate)
//! check principal= op= <resource> [host=]   the decision and its rule; no host= is
//!                                         a session whose address is unknown
//! describe [type=] [name=] [pattern=any|match|literal|prefixed] [principal=] [host=]
//!          [op=] [perm=]                  DescribeAcls: the bindings the filter matches
//! delete  (the same keys)                 DeleteAcls: removes and prints them
//! ```
//!
//! `<resource>` is one of `topic=`, `group=`, `cluster=`, `transactional_id=`,
//! `delegation_token=`, `user=` with the name. Filter keys left out (or `any`)
//! are Kafka's ANY. The rules are those of Kafka's `StandardAuthorizerData`
//! (`findAclRule`, `findResult`) and `ResourcePatternFilter` /
//! `AccessControlEntryFilter.matches`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use klog_broker::security::acl::{
    AclBinding, AclBindingFilter, AclOperation, AuthorizerConfig, Decision, PatternFilter,
    PatternType, Permission, StandardAuthorizer,
};
use klog_broker::security::{Authorizer, Operation, Principal, Resource, ResourceType, Session};
use klog_test_support::script::{Args, run_file};
use proptest::prelude::*;

const RESOURCE_KEYS: [(&str, ResourceType); 6] = [
    ("topic", ResourceType::Topic),
    ("group", ResourceType::Group),
    ("cluster", ResourceType::Cluster),
    ("transactional_id", ResourceType::TransactionalId),
    ("delegation_token", ResourceType::DelegationToken),
    ("user", ResourceType::User),
];

/// The one `<type>=<name>` of a command.
fn resource(a: &Args) -> (ResourceType, String) {
    let mut found = RESOURCE_KEYS
        .iter()
        .filter_map(|(k, t)| a.opt(k).map(|name| (*t, name)));
    let r = found
        .next()
        .expect("a resource: topic=, group=, cluster=, ...");
    assert!(found.next().is_none(), "one resource per command");
    r
}

fn principal(written: &str) -> Principal {
    let (kind, name) = written.split_once(':').expect("principal=<type>:<name>");
    Principal {
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn session(a: &Args) -> Session {
    let host = a
        .opt("host")
        .map(|h| h.parse::<IpAddr>().expect("host= an address"));
    Session {
        principal: principal(&a.s("principal")),
        host,
        listener: "PLAINTEXT".to_owned(),
    }
}

/// `None` for a missing key or `any`, else the parsed value.
fn any_or<T: std::str::FromStr>(a: &Args, k: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    a.opt(k)
        .filter(|v| !v.eq_ignore_ascii_case("any"))
        .map(|v| v.parse().expect("a Kafka name"))
}

fn filter(a: &Args) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: any_or(a, "type"),
        resource_name: a.opt("name"),
        pattern: a
            .opt("pattern")
            .map_or(PatternFilter::Any, |p| p.parse().expect("pattern=")),
        principal: a.opt("principal"),
        host: a.opt("host"),
        operation: any_or(a, "op"),
        permission: any_or(a, "perm"),
    }
}

fn lines(bindings: Vec<AclBinding>, prefix: &str) -> Vec<String> {
    if bindings.is_empty() {
        return vec!["(none)".to_owned()];
    }
    bindings.iter().map(|b| format!("{prefix}{b}")).collect()
}

fn run(auth: &mut StandardAuthorizer, name: &str, a: &Args) -> Vec<String> {
    match name {
        "authorizer" => {
            *auth = StandardAuthorizer::new(AuthorizerConfig {
                super_users: AuthorizerConfig::parse_super_users(
                    &a.opt("super").unwrap_or_default(),
                ),
                allow_everyone_if_no_acl_found: a.opt("no_acl").as_deref() == Some("allow"),
            });
            vec![]
        }
        "allow" | "deny" => {
            let (resource_type, resource_name) = resource(a);
            let added = auth.add(AclBinding {
                resource_type,
                resource_name,
                pattern: a
                    .opt("pattern")
                    .map_or(PatternType::Literal, |p| p.parse().expect("pattern=")),
                principal: a.s("principal"),
                host: a.opt("host").unwrap_or_else(|| "*".to_owned()),
                operation: a.s("op").parse().expect("op="),
                permission: name.parse().expect("allow or deny"),
            });
            if added {
                vec![]
            } else {
                vec!["already present".to_owned()]
            }
        }
        "check" => {
            let (kind, name) = resource(a);
            let op: AclOperation = a.s("op").parse().expect("op=");
            let op = Operation::try_from(op).expect("a request operation");
            let session = session(a);
            let resource = Resource { kind, name: &name };
            let decision = auth.decide(&session, op, resource);
            assert_eq!(
                auth.authorize(&session, op, resource),
                decision.is_allowed()
            );
            vec![decision.to_string()]
        }
        "describe" => lines(auth.describe(&filter(a)), ""),
        "delete" => lines(auth.remove(&filter(a)), "removed "),
        other => panic!("unknown command {other}"),
    }
}

#[test]
fn table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/acl.txt");
    run_file(
        &path,
        || StandardAuthorizer::new(AuthorizerConfig::default()),
        run,
    );
}

// ---- properties -------------------------------------------------------------

const PRINCIPALS: [&str; 3] = ["User:a", "User:b", "User:*"];
const HOSTS: [&str; 4] = ["*", "10.0.0.1", "10.0.0.2", "::1"];
/// Names that are prefixes of one another, with a two-byte character.
const NAMES: [&str; 7] = ["a", "ab", "abc", "b", "é", "éa", "*"];
const TYPES: [ResourceType; 2] = [ResourceType::Topic, ResourceType::Group];
const OPERATIONS: [Operation; 10] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

fn arb_binding() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(TYPES.to_vec()),
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(PatternType::ALL.to_vec()),
        prop::sample::select(PRINCIPALS.to_vec()),
        prop::sample::select(HOSTS.to_vec()),
        prop::sample::select(AclOperation::ALL.to_vec()),
        prop::sample::select(Permission::ALL.to_vec()),
    )
        .prop_map(
            |(resource_type, name, pattern, principal, host, operation, permission)| AclBinding {
                resource_type,
                resource_name: name.to_owned(),
                pattern,
                principal: principal.to_owned(),
                host: host.to_owned(),
                operation,
                permission,
            },
        )
}

/// A request: who (`User:a`, `User:b` or `User:c`, who no binding names),
/// from where, what, on which resource.
#[derive(Debug, Clone)]
struct Request {
    session: Session,
    op: Operation,
    kind: ResourceType,
    name: String,
}

fn arb_request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::option::of(prop::sample::select(vec![
            "10.0.0.1",
            "10.0.0.2",
            "0:0:0:0:0:0:0:1",
            "::ffff:10.0.0.1",
        ])),
        prop::sample::select(OPERATIONS.to_vec()),
        prop::sample::select(TYPES.to_vec()),
        prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "c", "é", "éab"]),
    )
        .prop_map(|(user, host, op, kind, name)| Request {
            session: Session {
                principal: Principal::user(user),
                host: host.map(|h| h.parse().expect("an address")),
                listener: "PLAINTEXT".to_owned(),
            },
            op,
            kind,
            name: name.to_owned(),
        })
}

fn authorizer(bindings: &[AclBinding], allow_if_no_acl: bool, super_a: bool) -> StandardAuthorizer {
    let auth = StandardAuthorizer::new(AuthorizerConfig {
        super_users: if super_a {
            BTreeSet::from(["User:a".to_owned()])
        } else {
            BTreeSet::new()
        },
        allow_everyone_if_no_acl_found: allow_if_no_acl,
    });
    auth.replace(bindings.iter().cloned());
    auth
}

fn decide(auth: &StandardAuthorizer, r: &Request) -> Decision {
    auth.decide(
        &r.session,
        r.op,
        Resource {
            kind: r.kind,
            name: &r.name,
        },
    )
}

/// Kafka's rules written out over every binding, without the index: the
/// reference the authorizer must agree with.
fn reference(
    bindings: &[AclBinding],
    allow_if_no_acl: bool,
    super_a: bool,
    r: &Request,
) -> Decision {
    let who = r.session.principal.to_string();
    if super_a && who == "User:a" {
        return Decision::SuperUser;
    }
    let host = r.session.host.map(|h| h.to_canonical());
    let on_resource: Vec<&AclBinding> = bindings
        .iter()
        .filter(|b| {
            b.resource_type == r.kind
                && match b.pattern {
                    PatternType::Literal => b.resource_name == r.name || b.resource_name == "*",
                    _ => r.name.starts_with(&b.resource_name),
                }
        })
        .collect();
    if on_resource.is_empty() {
        return Decision::NoAclFound {
            allowed: allow_if_no_acl,
        };
    }
    let op = AclOperation::from(r.op);
    let implied = |granted: AclOperation| match r.op {
        Operation::Describe => [
            AclOperation::Read,
            AclOperation::Write,
            AclOperation::Delete,
            AclOperation::Alter,
        ]
        .contains(&granted),
        Operation::DescribeConfigs => granted == AclOperation::AlterConfigs,
        _ => false,
    };
    let applies = |b: &&&AclBinding| {
        (b.principal == "User:*" || b.principal == who)
            && (b.host == "*"
                || host
                    .is_some_and(|h| b.host.parse::<IpAddr>().map(|a| a.to_canonical()) == Ok(h)))
            && (b.operation == AclOperation::All
                || b.operation == op
                || (b.permission == Permission::Allow && implied(b.operation)))
    };
    let applying: Vec<&&AclBinding> = on_resource.iter().filter(applies).collect();
    if applying.iter().any(|b| b.permission == Permission::Deny) {
        Decision::DenyAcl
    } else if applying.is_empty() {
        Decision::NoMatchingAcl
    } else {
        Decision::AllowAcl
    }
}

/// A DENY binding that applies to `r`, built from choices: wildcard or exact
/// principal, host, operation and resource pattern.
fn matching_deny(r: &Request, choice: [bool; 4], prefix_len: usize) -> AclBinding {
    let [any_principal, any_host, all_ops, pattern] = choice;
    let (resource_name, pattern) = if pattern {
        let cut = r
            .name
            .char_indices()
            .map(|(i, _)| i)
            .chain([r.name.len()])
            .filter(|&i| i > 0)
            .nth(prefix_len % r.name.chars().count())
            .unwrap_or(r.name.len());
        (r.name[..cut].to_owned(), PatternType::Prefixed)
    } else if prefix_len.is_multiple_of(2) {
        ("*".to_owned(), PatternType::Literal)
    } else {
        (r.name.clone(), PatternType::Literal)
    };
    AclBinding {
        resource_type: r.kind,
        resource_name,
        pattern,
        principal: if any_principal {
            "User:*".to_owned()
        } else {
            r.session.principal.to_string()
        },
        host: match (any_host, r.session.host) {
            (false, Some(h)) => h.to_string(),
            _ => "*".to_owned(),
        },
        operation: if all_ops {
            AclOperation::All
        } else {
            AclOperation::from(r.op)
        },
        permission: Permission::Deny,
    }
}

proptest! {
    /// DENY wins: a DENY that applies to the request denies it, whatever else is
    /// bound (unless the principal is a super user), and adding any DENY never
    /// turns a denied request into an allowed one.
    #[test]
    fn deny_always_wins(
        bindings in prop::collection::vec(arb_binding(), 0..24),
        extra in arb_binding(),
        r in arb_request(),
        choice in any::<[bool; 4]>(),
        prefix_len in 0usize..4,
        allow_if_no_acl in any::<bool>(),
        super_a in any::<bool>(),
    ) {
        let before = decide(&authorizer(&bindings, allow_if_no_acl, super_a), &r);

        let deny = matching_deny(&r, choice, prefix_len);
        let with_deny = authorizer(&bindings, allow_if_no_acl, super_a);
        with_deny.add(deny.clone());
        let after = decide(&with_deny, &r);
        if before == Decision::SuperUser {
            prop_assert_eq!(after, Decision::SuperUser);
        } else {
            prop_assert_eq!(after, Decision::DenyAcl, "{} did not deny", deny);
        }

        let mut extra = extra;
        extra.permission = Permission::Deny;
        let with_extra = authorizer(&bindings, allow_if_no_acl, super_a);
        with_extra.add(extra.clone());
        let after = decide(&with_extra, &r);
        prop_assert!(
            before.is_allowed() || !after.is_allowed(),
            "adding {} turned {} into {}", extra, before, after
        );
    }

    /// The index (literal map, wildcard, prefix walk), kept up to date through
    /// adds and filtered removals, decides as a scan of every binding does.
    #[test]
    fn index_decides_as_a_scan_of_every_binding(
        bindings in prop::collection::vec(arb_binding(), 0..32),
        removals in prop::collection::vec((arb_binding(), 0u8..4), 0..4),
        requests in prop::collection::vec(arb_request(), 1..16),
        allow_if_no_acl in any::<bool>(),
        super_a in any::<bool>(),
    ) {
        let auth = authorizer(&[], allow_if_no_acl, super_a);
        for b in &bindings {
            auth.add(b.clone());
        }
        let mut kept: Vec<AclBinding> = bindings.clone();
        kept.sort();
        kept.dedup();
        for (b, how) in removals {
            // Remove by an exact filter, by resource name under MATCH, or by principal.
            let mut f = AclBindingFilter::from(&b);
            match how {
                0 => {}
                1 => {
                    f = AclBindingFilter::ANY;
                    f.pattern = PatternFilter::Match;
                    f.resource_name = Some(b.resource_name.clone());
                }
                _ => {
                    f = AclBindingFilter::ANY;
                    f.principal = Some(b.principal.clone());
                    f.operation = Some(b.operation);
                }
            }
            let removed = auth.remove(&f);
            let expected: Vec<AclBinding> = kept.iter().filter(|k| f.matches(k)).cloned().collect();
            prop_assert_eq!(&removed, &expected);
            kept.retain(|k| !f.matches(k));
        }
        prop_assert_eq!(auth.describe(&AclBindingFilter::ANY), kept.clone());
        for r in &requests {
            prop_assert_eq!(
                decide(&auth, r),
                reference(&kept, allow_if_no_acl, super_a, r),
                "request {:?}", r
            );
        }
    }
}
