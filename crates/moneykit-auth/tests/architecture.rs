//! The layout, kept true: reads the server's own sources and fails when an import breaks
//! the layering that README's map and `lib.rs` describe.
//!
//! - Each top-level module (a layer) imports only the layers before it in [`LAYERS`]; so
//!   `domain/` is pure (no engine, store, http, operations or metrics), and no two layers
//!   import each other.
//! - HTTP handlers never import the store: they call the engine or the operations.
//! - No import cycle among the files of the crate, nor among those of the SDK (a file's
//!   imports of its own ancestors' `mod.rs`, which declare it, do not count).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A layer may import only the layers listed before it.
const LAYERS: &[&str] = &[
    "crypto",
    "net",
    "telemetry",
    "domain",
    "metrics",
    "store",
    "operations",
    "engine",
    "webhooks",
    "http",
    "config",
    "startup",
    "cli",
];

/// What `domain/` must never import, whatever the order above says.
const NOT_IN_DOMAIN: &[&str] = &["engine", "store", "http", "operations", "metrics"];

/// The HTTP handler files: they parse, call the engine or the operations, and respond.
const HANDLERS: &[&str] = &[
    "http/auth.rs",
    "http/oauth2.rs",
    "http/discovery.rs",
    "http/health.rs",
    "http/webhooks.rs",
    "http/admin_api.rs",
    "http/console/sign_in.rs",
    "http/console/overview.rs",
    "http/console/apps.rs",
    "http/console/clients.rs",
    "http/console/keys.rs",
    "http/console/events.rs",
    "http/console/audit.rs",
];

/// The server's sources.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The SDK's sources (`crates/moneykit/src`).
fn sdk_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../moneykit/src")
}

/// Every `.rs` file under the server's `src/`, relative to it, with its text.
fn sources() -> BTreeMap<String, String> {
    sources_in(&src())
}

/// Every `.rs` file under `root`, relative to it, with its text.
fn sources_in(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let name = relative.to_string_lossy().replace('\\', "/");
                out.insert(name, fs::read_to_string(&path).expect("a readable source"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The module path of a file: `http/auth.rs` → `[http, auth]`, `http/mod.rs` → `[http]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file that defines module `path`, if any.
fn file_of(path: &[String], files: &BTreeMap<String, String>) -> Option<String> {
    if path.is_empty() {
        return Some("lib.rs".into());
    }
    let joined = path.join("/");
    [format!("{joined}.rs"), format!("{joined}/mod.rs")]
        .into_iter()
        .find(|f| files.contains_key(f))
}

/// Code without comments (doc comments name modules in prose) and without string literals.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.split("//").next().unwrap_or_default();
            let mut out = String::new();
            let mut in_string = false;
            for c in line.chars() {
                if c == '"' {
                    in_string = !in_string;
                } else if !in_string {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names: `crate::a::b`, `super::a`, and the members of brace
/// groups after them (`use crate::a::{b, c::d}`), resolved to absolute paths.
fn named_paths(file: &str, text: &str) -> Vec<Vec<String>> {
    let here = module_of(file);
    // `super` from a file is its module's parent; from `mod.rs` the same rule applies to
    // the module the mod.rs defines.
    let parent = here[..here.len().saturating_sub(1)].to_vec();
    let code = code(text);
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = base.clone();
            let mut tail = rest;
            loop {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                if end == 0 {
                    break;
                }
                path.push(tail[..end].to_owned());
                tail = &tail[end..];
                if let Some(next) = tail.strip_prefix("::") {
                    tail = next;
                } else {
                    break;
                }
            }
            if let Some(group) = tail.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for member in group.split(',') {
                    let mut p = path.clone();
                    p.extend(
                        member
                            .trim()
                            .split("::")
                            .map(|s| s.split_whitespace().next().unwrap_or_default())
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_owned),
                    );
                    out.push(p);
                }
            }
            out.push(path);
        }
    }
    out
}

/// The file a named path lands in: the deepest module file along it.
fn target_file(path: &[String], files: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .find_map(|n| file_of(&path[..n], files))
}

/// file → the files it imports (not counting the ancestors that declare it). A path
/// through an item the crate root re-exports (`crate::TokenSource`) counts as an import
/// of the module the item comes from.
fn import_graph(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let reexports: BTreeMap<String, Vec<String>> = files
        .get("lib.rs")
        // The root's `pub use module::Item` paths are relative to it.
        .map(|root| named_paths("lib.rs", &root.replace("pub use ", "pub use crate::")))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.len() > 1)
        .map(|p| (p.last().cloned().unwrap_or_default(), p))
        .collect();
    let resolve = |path: &Vec<String>| match path.first().and_then(|f| reexports.get(f)) {
        Some(origin) if file_of(&path[..1], files).is_none() => {
            origin.iter().chain(&path[1..]).cloned().collect()
        }
        _ => path.clone(),
    };
    files
        .iter()
        .map(|(file, text)| {
            let here = module_of(file);
            let targets = named_paths(file, text)
                .iter()
                .map(resolve)
                .filter_map(|p| target_file(&p, files))
                .filter(|target| {
                    let module = module_of(target);
                    target != file && !here.starts_with(&module)
                })
                .collect();
            (file.clone(), targets)
        })
        .collect()
}

fn layer_of(file: &str) -> String {
    module_of(file).first().cloned().unwrap_or_default()
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let files = sources();
    let graph = import_graph(&files);
    let rank = |layer: &str| LAYERS.iter().position(|l| *l == layer);
    let mut broken = Vec::new();
    for (file, targets) in &graph {
        let layer = layer_of(file);
        if layer.is_empty() {
            continue; // lib.rs, main.rs: the crate root declares every layer
        }
        let Some(own) = rank(&layer) else {
            broken.push(format!("{file}: layer {layer:?} is not in LAYERS"));
            continue;
        };
        for target in targets {
            let other = layer_of(target);
            if other == layer || other.is_empty() {
                continue;
            }
            match rank(&other) {
                Some(r) if r < own => {}
                _ => broken.push(format!("{file} imports {target} ({layer} → {other})")),
            }
            if layer == "domain" && NOT_IN_DOMAIN.contains(&other.as_str()) {
                broken.push(format!("{file}: domain must stay pure, imports {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn handlers_do_not_import_the_store() {
    let files = sources();
    let graph = import_graph(&files);
    for handler in HANDLERS {
        let targets = graph
            .get(*handler)
            .unwrap_or_else(|| panic!("{handler} is not a file any more: update HANDLERS"));
        let store: Vec<_> = targets.iter().filter(|t| layer_of(t) == "store").collect();
        assert!(
            store.is_empty(),
            "{handler} imports the store ({store:?}); call the engine or the operations"
        );
    }
}

/// The import cycles among `files`, each as its files in order.
fn cycles(files: &BTreeMap<String, String>) -> Vec<String> {
    let graph = import_graph(files);
    // Depth-first search; every back edge closes a cycle, reported with its files.
    fn visit(
        file: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|f| f == file) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(file.to_owned());
            cycles.push(cycle.join(" → "));
            return;
        }
        if !done.insert(file.to_owned()) {
            return;
        }
        stack.push(file.to_owned());
        for next in graph.get(file).into_iter().flatten() {
            visit(next, graph, stack, done, cycles);
        }
        stack.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for file in graph.keys() {
        visit(file, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    cycles
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let found = cycles(&sources());
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_sdk_has_no_import_cycle_either() {
    let sdk = sources_in(&sdk_src());
    assert!(
        sdk.contains_key("token_source.rs"),
        "the SDK's sources are read"
    );
    let found = cycles(&sdk);
    assert!(
        found.is_empty(),
        "import cycles in the SDK:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_it_is_meant_to_catch() {
    // The rules above are only as good as the import reader: check it on known input.
    let paths = named_paths(
        "http/auth.rs",
        "use super::extract::{Bearer, form::Fields};\nuse crate::store::{self, Store};\n// crate::engine in a comment\nlet s = \"crate::metrics\";",
    );
    let shown: BTreeSet<String> = paths.iter().map(|p| p.join("::")).collect();
    for expected in [
        "http::extract::Bearer",
        "http::extract::form::Fields",
        "store",
        "store::Store",
    ] {
        assert!(shown.contains(expected), "{expected} not seen in {shown:?}");
    }
    assert!(
        !shown
            .iter()
            .any(|p| p.starts_with("engine") || p.starts_with("metrics"))
    );
    let files = sources();
    assert_eq!(
        target_file(&["engine".into(), "grant".into(), "Engine".into()], &files).as_deref(),
        Some("engine/grant.rs")
    );
}
