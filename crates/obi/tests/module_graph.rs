//! The agent's modules import each other without cycles.
//!
//! Every `crate::...` and `super::...` path in `src/` is an edge from the
//! module whose file holds it to the module it names. A parent and its own
//! children may use each other (a module re-exports its children's types and
//! they use its shared ones); between siblings the dependencies must form a
//! DAG, at every level of nesting. An edge between two modules counts as an
//! edge between the two children of their closest common ancestor that
//! contain them: `export::otlp::x -> config::y` is `export -> config`.
//!
//! This reads source text (no compiler plugin, nothing to install), so it
//! runs in every `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs`/`main.rs` the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a line names, as written: `crate::a::b`, `super::c`,
/// and the members of a `use crate::{a, b::c}` group.
fn paths_in(line: &str) -> Vec<(String, Vec<String>)> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| from + i) {
            let before = code[..i].chars().last();
            from = i + start.len();
            let rest = &code[from..];
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let root = start.trim_end_matches("::").to_string();
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for member in inner.split(',') {
                    let segs = segments(member.trim());
                    if !segs.is_empty() {
                        out.push((root.clone(), segs));
                    }
                }
            } else {
                out.push((root, segments(rest)));
            }
        }
    }
    out
}

fn segments(text: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(r) if !r.starts_with('{') => rest = r,
            _ => break,
        }
    }
    segs
}

/// Where a path leads: the longest prefix that is a module.
fn resolve(from: &Module, root: &str, segs: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module = if root == "crate" { Vec::new() } else { from[..from.len().saturating_sub(1)].to_vec() };
    let mut best = None;
    for s in segs {
        if s == "super" {
            base.pop();
            continue;
        }
        base.push(s.clone());
        if modules.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best.or_else(|| (root == "super").then_some(base[..base.len().saturating_sub(segs.len())].to_vec()))
}

#[test]
fn modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(&src, f)).collect();

    // parent -> (child a -> child b -> an example of the reference).
    let mut edges: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (root, segs) in paths_in(line) {
                let Some(to) = resolve(&from, &root, &segs, &modules) else { continue };
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue; // a module and its ancestor
                }
                let site = format!("{}:{}: {}", file.strip_prefix(&src).unwrap().display(), n + 1, line.trim());
                edges
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .entry(to[common].clone())
                    .or_insert(site);
            }
        }
    }

    let mut cycles = Vec::new();
    for (parent, graph) in &edges {
        for cycle in find_cycles(graph) {
            let mut why = String::new();
            for w in cycle.windows(2) {
                why.push_str(&format!("\n    {} -> {}   ({})", w[0], w[1], graph[&w[0]][&w[1]]));
            }
            let at = if parent.is_empty() { "crate".to_string() } else { parent.join("::") };
            cycles.push(format!("in {at}: {}{why}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles between modules:\n{}", cycles.join("\n"));
    assert!(edges.len() > 3, "the scan found almost no imports; is it reading the sources?");
}

/// One cycle through each strongly connected component with more than one
/// member (first node repeated at the end).
fn find_cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if done.contains(start) {
            continue;
        }
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flat_map(|m| m.keys()) {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    done.extend(cycle.iter().cloned());
                    found.push(cycle);
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
        done.insert(start.clone());
    }
    found
}

#[test]
fn path_scanner_reads_use_forms() {
    let got = paths_in("use crate::{config::Config, span::Span}; // crate::ignored");
    assert_eq!(
        got,
        [
            ("crate".into(), vec!["config".into(), "Config".into()]),
            ("crate".into(), vec!["span".into(), "Span".into()])
        ]
    );
    let got = paths_in("let x = super::super::a::f(); my_crate::b::c();");
    assert_eq!(got, [("super".to_string(), vec!["super".to_string(), "a".to_string(), "f".to_string()])]);
    let modules: BTreeSet<Module> = [vec!["a".to_string()], vec!["b".into(), "c".into()], vec!["b".into()]].into();
    let from = vec!["b".to_string(), "c".to_string()];
    assert_eq!(resolve(&from, "super", &["super".into(), "a".into(), "f".into()], &modules), Some(vec!["a".into()]));
}
