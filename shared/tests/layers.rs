//! The core's shape, kept: `shared/src` is folders by layer, and a file only imports from its own
//! layer or the ones below it, with no import circle between files.
//!
//! Layers, lowest first: `error.rs`, `limits.rs` and `base/` (what every layer uses), `store/`
//! (what etcd keeps on disk), `reach/` (finding and talking to members), `ops/` (one operation
//! each), `cli/` (arguments, printers, completion). An import is any `crate::…` path or
//! `super::…` path in a file's code (comments and `#[cfg(test)]` modules left out), resolved to
//! the file that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file's module path (`["reach", "cluster"]`) and its text without comments and test modules.
type Files = BTreeMap<Vec<String>, String>;

fn rank(module: &[String]) -> Option<usize> {
    match module.first().map(String::as_str) {
        Some("error" | "limits" | "base") => Some(0),
        Some("store") => Some(1),
        Some("reach") => Some(2),
        Some("ops") => Some(3),
        Some("cli") => Some(4),
        _ => None,
    }
}

const LAYERS: [&str; 5] = ["base (error, limits, base/)", "store", "reach", "ops", "cli"];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a file with line comments and `#[cfg(test)]` items (their braces matched) cut.
fn code(text: &str) -> String {
    let mut kept = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        if pending_test {
            pending_test = false;
            let depth = line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if depth > 0 {
                skip_depth = Some(depth);
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

fn files() -> Files {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    let mut out = Files::new();
    for path in paths {
        let rel = path.strip_prefix(&src).expect("under src").with_extension("");
        let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if module.last().is_some_and(|m| m == "mod" || m == "lib") {
            module.pop();
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        out.insert(module, code(&text));
    }
    out
}

/// The longest prefix of `path` that is a file's module.
fn resolve<'a>(files: &'a Files, path: &[String]) -> Option<&'a Vec<String>> {
    (1..=path.len()).rev().find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts at `prefix` in `text`: `crate::a::b` → `[a, b]`, and one path per item
/// of a `crate::a::{b, c::d}` group.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let mut path = Vec::new();
        let mut s = rest;
        loop {
            let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
            if end == 0 {
                break;
            }
            path.push(s[..end].to_string());
            s = &s[end..];
            if let Some(next) = s.strip_prefix("::") {
                s = next;
                if let Some(group) = s.strip_prefix('{') {
                    let close = group.find('}').unwrap_or(group.len());
                    for item in group[..close].split(',') {
                        let first: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                        if !first.is_empty() && first != "self" {
                            let mut p = path.clone();
                            p.push(first);
                            out.push(p);
                        }
                    }
                    break;
                }
            } else {
                break;
            }
        }
        out.push(path);
    }
    out
}

/// The modules a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn children(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub ").or_else(|| l.strip_prefix("pub(crate) ")).unwrap_or(l);
            rest.strip_prefix("mod ")?.strip_suffix(';').map(str::to_string)
        })
        .collect()
}

/// Which files each file imports from.
fn imports(files: &Files) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut edges = BTreeMap::new();
    for (module, text) in files {
        let mut to = BTreeSet::new();
        for path in paths_after(text, "crate::") {
            if let Some(target) = resolve(files, &path) {
                to.insert(target.clone());
            }
        }
        // `super::x` from `a/b.rs` (module [a, b]) and from `a/mod.rs` (module [a]) both mean
        // the parent module of the file's module.
        for path in paths_after(text, "super::") {
            let mut full = module[..module.len().saturating_sub(1)].to_vec();
            full.extend(path);
            if let Some(target) = resolve(files, &full) {
                to.insert(target.clone());
            }
        }
        // A folder's `mod.rs` reaches its own children by their names (`model::Row`).
        for child in children(text) {
            for path in paths_after(text, &format!("{child}::")) {
                let mut full = module.clone();
                full.push(child.clone());
                full.extend(path);
                if let Some(target) = resolve(files, &full) {
                    to.insert(target.clone());
                }
            }
        }
        to.remove(module);
        to.remove(&Vec::new());
        edges.insert(module.clone(), to);
    }
    edges
}

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "lib.rs".into()
    } else {
        module.join("/")
    }
}

/// Strongly connected components with more than one file (Tarjan's algorithm).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                component.push(show(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_file_imports_from_a_higher_layer() {
    let files = files();
    let mut wrong = Vec::new();
    for (from, tos) in imports(&files) {
        let Some(r) = rank(&from) else { continue };
        for to in tos {
            if let Some(t) = rank(&to).filter(|&t| t > r) {
                wrong.push(format!("{} ({}) imports {} ({})", show(&from), LAYERS[r], show(&to), LAYERS[t]));
            }
        }
    }
    assert!(wrong.is_empty(), "imports from a higher layer:\n  {}", wrong.join("\n  "));
}

#[test]
fn no_import_circle_between_files() {
    let found = circles(&imports(&files()));
    let shown: Vec<String> = found.iter().map(|c| c.join(" ↔ ")).collect();
    assert!(found.is_empty(), "import circles:\n  {}", shown.join("\n  "));
}

#[test]
fn the_top_of_shared_src_is_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut top: Vec<String> = std::fs::read_dir(&src)
        .expect("read shared/src")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["base", "cli", "error.rs", "lib.rs", "limits.rs", "ops", "reach", "store"]);
}

#[test]
fn the_checker_sees_what_it_must() {
    // Its own parts, on text made for them: a group import, a `super::` path, a comment and
    // a test module that must not count.
    let text = "use crate::a::{b, c::d};\n// crate::z\nfn f() { super::y::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::z;\n}\n";
    let code = code(text);
    assert!(!code.contains("crate::z"), "{code}");
    let paths = paths_after(&code, "crate::");
    assert!(paths.contains(&vec!["a".into(), "b".into()]) && paths.contains(&vec!["a".into(), "c".into()]));
    assert_eq!(paths_after(&code, "super::"), vec![vec!["y".to_string(), "g".into()]]);
    let mut edges = BTreeMap::new();
    let (a, b) = (vec!["a".to_string()], vec!["b".to_string()]);
    edges.insert(a.clone(), BTreeSet::from([b.clone()]));
    edges.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(circles(&edges), vec![vec!["a".to_string(), "b".into()]]);
}
