//! Architecture guard: klog-coordinator's modules import one another without a
//! circle (`group` holds the data, `coordinator` the transitions over it), read from
//! the sources by klog-test-support's module graph.

use std::path::Path;

use klog_test_support::module_graph::{Granularity, cycles, edges};

#[test]
fn modules_have_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src, Granularity::TopLevel);
    let circles = cycles(&edges);
    let inside: Vec<_> = edges
        .iter()
        .filter(|(from, to)| circles.iter().any(|c| c.contains(from) && c.contains(to)))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles among klog-coordinator's modules: {circles:?}\nedges inside them: {inside:#?}"
    );
}
