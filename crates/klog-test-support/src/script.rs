//! Table tests from text files, for the sans-IO state machines.
//!
//! A script is a list of cases: a command line, a `----` line, the expected output
//! lines (everything the command answered or emitted, in order), and a blank line.
//! A command line not followed by `----` must produce no output (a set-up line).
//! `# ...` lines are comments. Commands are words: a name, then `key=value`
//! arguments ([`Args`]). Set `KLOG_REWRITE=1` to print the whole file with the
//! actual outputs when a case fails, to review and paste back.

use std::collections::BTreeMap;
use std::path::Path;

/// The `key=value` words of a command line (a bare word is a key with an empty
/// value, i.e. a flag).
#[derive(Debug, Clone, Default)]
pub struct Args(pub BTreeMap<String, String>);

impl Args {
    /// Parses the words after the command name.
    pub fn parse(words: &[&str]) -> Self {
        Args(
            words
                .iter()
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap_or((w, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        )
    }

    /// A required argument; panics naming it when missing.
    pub fn s(&self, k: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("missing {k}="))
    }

    /// An optional argument (an empty value counts as absent).
    pub fn opt(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned().filter(|v| !v.is_empty())
    }

    /// Whether the word `k` (or `k=...`) is present.
    pub fn flag(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    /// A required integer argument.
    pub fn i(&self, k: &str) -> i64 {
        self.s(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k}= not a number"))
    }

    /// An optional integer argument.
    pub fn i_or(&self, k: &str, default: i64) -> i64 {
        self.opt(k).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{k}= not a number"))
        })
    }

    /// A comma-separated list (empty when absent or empty).
    pub fn list(&self, k: &str) -> Vec<String> {
        self.opt(k)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A comma-separated list of integers.
    pub fn ints(&self, k: &str) -> Vec<i32> {
        self.list(k)
            .iter()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{k}= not a list of numbers"))
            })
            .collect()
    }
}

/// Runs one script: `run` gets the state (made by `init` at the start of the file)
/// and each command's name and arguments, and returns its output lines. Panics with
/// the first case whose output differs.
pub fn run_file<S>(
    path: &Path,
    init: impl FnOnce() -> S,
    mut run: impl FnMut(&mut S, &str, &Args) -> Vec<String>,
) {
    let script = std::fs::read_to_string(path).expect("read testdata");
    let mut lines = script.lines().peekable();
    let mut state = init();
    let mut actual_file = String::new();
    let mut failure: Option<String> = None;
    while let Some(line) = lines.next() {
        actual_file.push_str(line);
        actual_file.push('\n');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut expected = Vec::new();
        let has_output = lines.peek() == Some(&"----");
        if has_output {
            lines.next();
            while let Some(l) = lines.peek() {
                if l.trim().is_empty() {
                    break;
                }
                expected.push(l.to_string());
                lines.next();
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, rest) = words.split_first().expect("a command");
        let actual = run(&mut state, name, &Args::parse(rest));
        if has_output || !actual.is_empty() {
            actual_file.push_str("----\n");
            for l in &actual {
                actual_file.push_str(l);
                actual_file.push('\n');
            }
        }
        if actual != expected && failure.is_none() {
            failure = Some(format!(
                "{}: {line}\nexpected:\n  {}\nactual:\n  {}",
                path.display(),
                expected.join("\n  "),
                actual.join("\n  ")
            ));
        }
    }
    if let Some(f) = failure {
        if std::env::var_os("KLOG_REWRITE").is_some() {
            println!("{actual_file}");
        }
        panic!("{f}");
    }
}

/// Every `*.txt` script in `dir`, sorted by name; panics if there is none.
pub fn scripts(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    files
}
