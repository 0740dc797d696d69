//! Architecture guard: klog-codec's modules import one another without a circle
//! (`compression` is a leaf under `builder` and `records`), read from the sources by
//! klog-test-support's module graph.

use std::path::Path;

#[test]
fn modules_have_no_import_circle() {
    klog_test_support::module_graph::assert_no_circles(
        "klog-codec",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    );
}
