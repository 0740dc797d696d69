//! Architecture guard: klog-broker's modules form layers, each importing only
//! from the layers below it (and, within a layer, only along the edges listed
//! here), so no import circle can form. The graph is read from the sources
//! (`crate::` paths outside comments and test modules) by klog-test-support's
//! module graph; `docs/architecture.md` draws the same layers.

use std::path::Path;

use klog_test_support::module_graph::{Granularity, cycles, edges, layer_violations};

/// The layers, lowest first. A name stands for its nested modules too.
const LAYERS: &[&[&str]] = &[
    // L0: leaves. Settings, pure helpers. (Framing and the
    // openraft glue are crates below this one: klog-rt, klog-quorum.)
    &[
        "alloc",
        "config",
        "features",
        "policy",
        "producer_ids",
        "security",
        "topics",
    ],
    // L1: state the services share: the metadata image, one partition.
    &[
        "metadata::store",
        "replica::partition",
        "replica::producer_state",
        "replica::rules",
    ],
    // L2: the replica manager and fetchers; the controller runtime and the way
    // to the active controller.
    &[
        "controller::client",
        "controller::runtime",
        "replica::fetcher",
        "replica::manager",
    ],
    // L3: services over the controller; log maintenance.
    &[
        "controller::admin",
        "controller::api",
        "controller::auto_create",
        "controller::lifecycle",
        "replica::maintenance",
    ],
    // L4: services over those: producer ids, the group runtime, the one
    // metadata publisher, ISR changes.
    &[
        "controller::id_allocator",
        "group",
        "metadata::publisher",
        "replica::isr",
    ],
    // L5: wire to domain translation.
    &["handlers"],
    // L6: bytes in and out: connections and dispatch.
    &["net::connection", "net::dispatch", "net"],
    // L7: the composition root.
    &["node"],
];

/// The edges allowed inside one layer.
const WITHIN: &[(&str, &str)] = &[
    ("config::topic", "config"),
    // The ACL authorizer implements the security module's Authorizer seam.
    ("security::acl", "security"),
    ("replica::partition", "replica::producer_state"),
    ("replica::manager", "replica::fetcher"),
    ("controller::client", "controller::runtime"),
    // The admin service implements the controller listener's AdminHandler seam.
    ("controller::admin", "controller::api"),
    ("controller::auto_create", "controller::admin"),
    ("metadata::publisher", "group"),
    ("handlers", "handlers"),
    ("net::connection", "net::dispatch"),
];

fn graph() -> std::collections::BTreeSet<(String, String)> {
    edges(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        Granularity::Nested,
    )
}

#[test]
fn modules_have_no_import_circle() {
    let circles = cycles(&graph());
    assert!(
        circles.is_empty(),
        "import circles among klog-broker's modules: {circles:?}"
    );
}

#[test]
fn modules_import_only_from_lower_layers() {
    let violations = layer_violations(&graph(), LAYERS, WITHIN);
    assert!(
        violations.is_empty(),
        "imports that go up klog-broker's layers (or from a module placed in no \
         layer; add it to LAYERS in this file and to docs/architecture.md): {violations:#?}"
    );
}
