//! A crate's module dependency graph, read from its `crate::` paths, for tests that
//! guard the architecture: no import circle between modules, and dependencies that
//! point down a declared stack of layers only.
//!
//! ```text
//!  src/*.rs ──edges()──► {(from, to)} ──cycles()───────────► strongly connected components
//!                                     └─layer_violations()─► edges that point up or sideways
//! ```
//!
//! The graph is textual, not a compiler's: it is cheap, needs no build, and is exact
//! enough for code written in the usual style. For every `.rs` file under `src/`
//! (except the crate roots `lib.rs` and `main.rs`, and `src/bin/`):
//!
//! - only the text before the file's first line starting with `#[cfg(test)]` is read,
//!   since a test module may use anything;
//! - lines whose trimmed start is `//` (comments, `//!` and `///` docs) are skipped, so
//!   a doc link such as ``[`crate::batch`]`` is no dependency;
//! - each `crate::a::b` path, and each path of a group such as
//!   `use crate::{a, b::{c, d}}` (which may span lines), is an edge from the file's
//!   node to the node the path names, when that node exists and is another node.
//!
//! What it does not see: `super::` and `self::` paths, items re-exported at the crate
//! root and named as `crate::Item`, modules declared inline in a crate root, block
//! comments, `crate::` inside string literals (which it would count), and test code
//! behind other attributes such as `#[cfg(all(test, ..))]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How finely files are grouped into nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One node per top-level module: `src/quorum/rpc.rs` and `src/quorum/mod.rs` are
    /// both `quorum`, `src/foo.rs` is `foo`. Edges inside a module are not seen.
    TopLevel,
    /// One node per file: `src/handlers/produce.rs` is `handlers::produce`,
    /// `src/handlers/mod.rs` (or `src/handlers.rs`) is `handlers`. A path names the
    /// longest node it starts with: `crate::handlers::produce::x` is an edge to
    /// `handlers::produce` if that node exists, else to `handlers`.
    Nested,
}

/// The nodes of the crate whose sources are in `src` (the crate's `src/` directory),
/// sorted.
///
/// # Panics
///
/// If `src` or a directory or file under it cannot be read (this is a test helper).
pub fn nodes(src: &Path, granularity: Granularity) -> BTreeSet<String> {
    source_files(src)
        .into_iter()
        .filter_map(|file| node_of(src, &file, granularity))
        .collect()
}

/// The module dependency edges `(from, to)` of the crate whose sources are in `src`
/// (the crate's `src/` directory), as the [module docs](self) describe, sorted.
///
/// # Panics
///
/// If `src` or a directory or file under it cannot be read (this is a test helper).
pub fn edges(src: &Path, granularity: Granularity) -> BTreeSet<(String, String)> {
    let files = source_files(src);
    let known: BTreeSet<String> = files
        .iter()
        .filter_map(|file| node_of(src, file, granularity))
        .collect();
    let mut out = BTreeSet::new();
    for file in &files {
        let Some(from) = node_of(src, file, granularity) else {
            continue;
        };
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for path in crate_paths(&scanned_text(&text)) {
            if let Some(to) = resolve(&path, &known, granularity)
                && to != from
            {
                out.insert((from.clone(), to));
            }
        }
    }
    out
}

/// The import circles of `edges`: each strongly connected component with more than
/// one node (every node in it reaches every other), found with Tarjan's algorithm.
///
/// Each component's nodes are sorted, and the components are sorted, so the result
/// does not depend on the order of discovery. Empty means the graph is acyclic.
pub fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        graph.entry(from).or_default().push(to);
        graph.entry(to).or_default();
    }
    let mut tarjan = Tarjan {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for &node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut out: Vec<Vec<String>> = tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c: Vec<String> = c.into_iter().map(str::to_owned).collect();
            c.sort();
            c
        })
        .collect();
    out.sort();
    out
}

/// Panics, naming every circle and the edges inside it, when the modules of the
/// crate `name` under `src` import one another in a circle (top-level modules as
/// nodes): the guard each crate's `tests/module_graph.rs` runs.
pub fn assert_no_circles(name: &str, src: &Path) {
    let edges = edges(src, Granularity::TopLevel);
    let circles = cycles(&edges);
    let inside: Vec<String> = edges
        .iter()
        .filter(|(from, to)| circles.iter().any(|c| c.contains(from) && c.contains(to)))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles among {name}'s modules: {circles:?}\nedges inside them: {inside:#?}"
    );
}

/// The edges of `edges` that break a stack of layers, sorted.
///
/// `layers` lists the layers from lowest to highest; each layer lists node names, where
/// a name also stands for the nodes nested in it (`handlers` matches `handlers` and
/// `handlers::produce`; the longest matching name decides a node's layer). An edge
/// may point to a lower layer. It is a violation when it points to a higher layer, when
/// either end is in no layer (so a new module has to be placed before it is used), or
/// when both ends are in one layer and no pair `(from, to)` of `allowed_within`
/// matches it (names matching as in `layers`: `("handlers", "handlers")` allows every
/// edge among the `handlers::*` nodes).
pub fn layer_violations(
    edges: &BTreeSet<(String, String)>,
    layers: &[&[&str]],
    allowed_within: &[(&str, &str)],
) -> Vec<(String, String)> {
    let layer_of = |node: &str| {
        layers
            .iter()
            .enumerate()
            .flat_map(|(i, names)| names.iter().map(move |name| (i, *name)))
            .filter(|(_, name)| matches(name, node))
            .max_by_key(|(_, name)| name.len())
            .map(|(i, _)| i)
    };
    edges
        .iter()
        .filter(|(from, to)| match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) if a > b => false,
            (Some(a), Some(b)) if a == b => !allowed_within
                .iter()
                .any(|(f, t)| matches(f, from) && matches(t, to)),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Whether layer name `name` stands for `node`: the node itself or one nested in it.
fn matches(name: &str, node: &str) -> bool {
    node.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Every `.rs` file under `src`, except the crate roots and `src/bin/`, sorted.
fn source_files(src: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot read directory {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(src, &mut out);
    out.retain(|f| {
        let rel = f.strip_prefix(src).unwrap_or(f);
        rel != Path::new("lib.rs") && rel != Path::new("main.rs") && !rel.starts_with("bin")
    });
    out.sort();
    out
}

/// The node `file` (under `src`) belongs to; `None` for a crate root.
fn node_of(src: &Path, file: &Path, granularity: Granularity) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    match last.strip_suffix(".rs") {
        Some("mod") => {}
        Some(stem) => parts.push(stem.to_owned()),
        None => parts.push(last),
    }
    if parts.is_empty() {
        return None;
    }
    Some(match granularity {
        Granularity::TopLevel => parts.swap_remove(0),
        Granularity::Nested => parts.join("::"),
    })
}

/// The node a `crate::` path (its segments after `crate`) names, if any.
fn resolve(path: &[String], known: &BTreeSet<String>, granularity: Granularity) -> Option<String> {
    match granularity {
        Granularity::TopLevel => path.first().filter(|p| known.contains(*p)).cloned(),
        Granularity::Nested => (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|candidate| known.contains(candidate)),
    }
}

/// The part of a file that counts: the lines before the first `#[cfg(test)]` line,
/// without comment lines.
fn scanned_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if !trimmed.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path that follows a `crate::` in `text`, as its segments after `crate`, with
/// use groups expanded: `crate::{a, b::{c, self}}` gives `a`, `b::c` and `b`.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    const KEYWORD: &str = "crate::";
    let chars: Vec<char> = text.chars().collect();
    let keyword: Vec<char> = KEYWORD.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + keyword.len() <= chars.len() {
        let at_keyword =
            chars[i..].starts_with(&keyword) && (i == 0 || !is_ident_char(chars[i - 1]));
        if at_keyword {
            let mut pos = i + keyword.len();
            out.extend(
                use_tree(&chars, &mut pos)
                    .into_iter()
                    .filter(|p| !p.is_empty()),
            );
            i = pos.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Parses a path or use tree at `pos` (just after a `::`), returning its paths and
/// leaving `pos` after it. Anything that is neither an identifier nor a group (`*`,
/// `<`, the end of the text) ends the path.
fn use_tree(chars: &[char], pos: &mut usize) -> Vec<Vec<String>> {
    let skip_whitespace = |pos: &mut usize| {
        while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
            *pos += 1;
        }
    };
    match chars.get(*pos) {
        Some('{') => {
            *pos += 1;
            let mut paths = Vec::new();
            loop {
                skip_whitespace(pos);
                if chars.get(*pos).is_none_or(|&c| c == '}') {
                    break;
                }
                paths.extend(use_tree(chars, pos));
                skip_whitespace(pos);
                match chars.get(*pos) {
                    Some(',') => *pos += 1,
                    // `}` ends the group; anything else is not a use group after all.
                    _ => break,
                }
            }
            if chars.get(*pos) == Some(&'}') {
                *pos += 1;
            }
            paths
        }
        Some(&c) if is_ident_char(c) => {
            let start = *pos;
            while chars.get(*pos).is_some_and(|&c| is_ident_char(c)) {
                *pos += 1;
            }
            let ident: String = chars[start..*pos].iter().collect();
            let rest = if chars.get(*pos) == Some(&':') && chars.get(*pos + 1) == Some(&':') {
                *pos += 2;
                use_tree(chars, pos)
            } else {
                vec![Vec::new()]
            };
            if ident == "self" {
                return rest;
            }
            rest.into_iter()
                .map(|tail| std::iter::once(ident.clone()).chain(tail).collect())
                .collect()
        }
        Some('*') => {
            *pos += 1;
            vec![Vec::new()]
        }
        _ => vec![Vec::new()],
    }
}

/// Tarjan's strongly connected components over a sorted adjacency map.
struct Tarjan<'a> {
    graph: &'a BTreeMap<&'a str, Vec<&'a str>>,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    next: usize,
    components: Vec<Vec<&'a str>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, node: &'a str) {
        self.index.insert(node, self.next);
        self.low.insert(node, self.next);
        self.next += 1;
        self.stack.push(node);
        self.on_stack.insert(node);
        let graph = self.graph;
        for &next in graph.get(node).into_iter().flatten() {
            if !self.index.contains_key(next) {
                self.visit(next);
                let low = self.low[node].min(self.low[next]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(next) {
                let low = self.low[node].min(self.index[next]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut component = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack.remove(member);
                component.push(member);
                if member == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path under `src/`, contents) to a fresh temporary `src/`.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn edge_list(dir: &tempfile::TempDir, granularity: Granularity) -> Vec<(String, String)> {
        edges(dir.path(), granularity).into_iter().collect()
    }

    fn e(from: &str, to: &str) -> (String, String) {
        (from.to_owned(), to.to_owned())
    }

    fn set(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter().map(|(a, b)| e(a, b)).collect()
    }

    #[test]
    fn files_map_to_top_level_nodes_and_roots_are_excluded() {
        let dir = tree(&[
            ("lib.rs", "pub mod a; use crate::a::X;"),
            ("main.rs", "use crate::a::X;"),
            ("a.rs", "use crate::quorum::rpc::Call;"),
            ("quorum/mod.rs", "pub mod rpc;"),
            ("quorum/rpc.rs", "use crate::a::X; use crate::quorum::Y;"),
            ("bin/tool.rs", "use crate::a::X;"),
        ]);
        assert_eq!(
            nodes(dir.path(), Granularity::TopLevel),
            ["a", "quorum"].map(String::from).into()
        );
        assert_eq!(
            edge_list(&dir, Granularity::TopLevel),
            [e("a", "quorum"), e("quorum", "a")]
        );
    }

    #[test]
    fn a_cycle_is_found() {
        let dir = tree(&[
            ("a.rs", "use crate::b::B;\n"),
            ("b.rs", "pub fn f() -> crate::c::C { todo!() }\n"),
            ("c.rs", "use crate::a;\n"),
            ("d.rs", "use crate::a::A;\n"),
        ]);
        let edges = edges(dir.path(), Granularity::TopLevel);
        assert_eq!(
            edges,
            set(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")])
        );
        assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn cycles_are_components_in_a_stable_order() {
        let edges = set(&[
            ("z", "y"),
            ("y", "z"),
            ("b", "a"),
            ("a", "b"),
            ("a", "c"),
            ("c", "d"),
        ]);
        assert_eq!(cycles(&edges), vec![vec!["a", "b"], vec!["y", "z"]]);
        assert!(cycles(&set(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn a_comment_only_reference_is_not_an_edge() {
        let dir = tree(&[
            (
                "a.rs",
                "//! Uses [`crate::b`].\n/// See crate::b::B.\n  // crate::b::B\nfn f() {}\n",
            ),
            ("b.rs", ""),
        ]);
        assert!(edge_list(&dir, Granularity::TopLevel).is_empty());
    }

    #[test]
    fn a_reference_after_cfg_test_is_not_an_edge() {
        let dir = tree(&[
            (
                "a.rs",
                "use crate::b::B;\n\n#[cfg(test)]\nmod tests {\n    use crate::c::C;\n}\n",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(edge_list(&dir, Granularity::TopLevel), [e("a", "b")]);
    }

    #[test]
    fn a_use_group_gives_an_edge_per_module() {
        let dir = tree(&[
            ("a.rs", "use crate::{b, c::d};\n"),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(
            edge_list(&dir, Granularity::TopLevel),
            [e("a", "b"), e("a", "c")]
        );
    }

    #[test]
    fn a_use_group_may_nest_and_span_lines() {
        let dir = tree(&[
            (
                "a.rs",
                "use crate::{\n    b::{self, X},\n    *,\n    c::{d::{E, F}},\n};\n",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(
            edge_list(&dir, Granularity::TopLevel),
            [e("a", "b"), e("a", "c")]
        );
    }

    #[test]
    fn only_whole_identifiers_after_crate_count() {
        let dir = tree(&[
            (
                "a.rs",
                "use my_crate::b; use crate::bc::X; use crate::BatchBuilder; use crate::a::Y;\n",
            ),
            ("b.rs", ""),
            ("bc.rs", ""),
        ]);
        // `my_crate::b` is another crate, `crate::bc` is not `crate::b`, `BatchBuilder`
        // is no module, and a node's own path is no edge.
        assert_eq!(edge_list(&dir, Granularity::TopLevel), [e("a", "bc")]);
    }

    #[test]
    fn nested_nodes_name_the_longest_module_a_path_starts_with() {
        let dir = tree(&[
            ("handlers/mod.rs", "use crate::state::S;\n"),
            (
                "handlers/produce.rs",
                "use crate::handlers::fetch::F;\nuse crate::handlers::helper;\n",
            ),
            (
                "handlers/fetch.rs",
                "use crate::{state::S, handlers::{produce::P}};\n",
            ),
            ("state.rs", ""),
        ]);
        assert_eq!(
            nodes(dir.path(), Granularity::Nested),
            ["handlers", "handlers::fetch", "handlers::produce", "state"]
                .map(String::from)
                .into()
        );
        let edges = edges(dir.path(), Granularity::Nested);
        assert_eq!(
            edges,
            set(&[
                ("handlers", "state"),
                ("handlers::fetch", "handlers::produce"),
                ("handlers::fetch", "state"),
                ("handlers::produce", "handlers"),
                ("handlers::produce", "handlers::fetch"),
            ])
        );
        assert_eq!(
            cycles(&edges),
            vec![vec!["handlers::fetch", "handlers::produce"]]
        );
        // The same files as top-level nodes: everything is `handlers`.
        assert_eq!(
            edge_list(&dir, Granularity::TopLevel),
            [e("handlers", "state")]
        );
    }

    #[test]
    fn a_layer_violation_is_reported() {
        let layers: &[&[&str]] = &[&["error", "varint"], &["batch"], &["handlers", "server"]];
        let edges = set(&[
            ("batch", "error"),                       // down: fine
            ("server", "handlers::produce"),          // within, allowed below
            ("handlers::produce", "handlers::fetch"), // within, not allowed
            ("varint", "batch"),                      // up
            ("batch", "unplaced"),                    // to no layer
            ("error", "varint"),                      // within, allowed below
        ]);
        assert_eq!(
            layer_violations(
                &edges,
                layers,
                &[("server", "handlers"), ("error", "varint")]
            ),
            vec![
                e("batch", "unplaced"),
                e("handlers::produce", "handlers::fetch"),
                e("varint", "batch"),
            ]
        );
    }

    #[test]
    fn the_longest_layer_name_places_a_node() {
        // `handlers::codec` sits below the rest of `handlers`.
        let layers: &[&[&str]] = &[&["handlers::codec"], &["handlers"]];
        let edges = set(&[
            ("handlers::produce", "handlers::codec"),
            ("handlers::codec", "handlers::produce"),
        ]);
        assert_eq!(
            layer_violations(&edges, layers, &[]),
            vec![e("handlers::codec", "handlers::produce")]
        );
    }
}
