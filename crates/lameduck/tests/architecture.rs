//! Not black-box like the rest of this binary: the layering rule of `docs/architecture.md`, checked on the sources: inside
//! every crate, no two files import each other, directly or through others
//! (Cargo already refuses cycles between crates).
//!
//! A file is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`); it uses another
//! when its code names `crate::other…`, also inside a grouped
//! `use crate::{…}`. A module's use of its own ancestors or descendants is the
//! module tree itself, not a cycle; test modules (`#[cfg(test)] mod tests`)
//! are left out. Written with std only, so that it needs no parser crate: the
//! rule is about paths, and paths are plain text.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cycles = Vec::new();
    let mut seen = 0;
    for entry in fs::read_dir(&crates).expect("crates/ reads") {
        let src = entry.expect("a crate").path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = graph(&src);
        seen += graph.len();
        let name = src.parent().and_then(|p| p.file_name()).unwrap_or_default();
        for cycle in strongly_connected(&graph) {
            let name = name.to_string_lossy();
            cycles.push(format!("{name}: {} reach each other", cycle.join(", ")));
        }
    }
    assert!(seen > 50, "only {seen} modules found under {crates:?}");
    assert!(
        cycles.is_empty(),
        "import cycles between files (see docs/architecture.md):\n{}",
        cycles.join("\n")
    );
}

/// The picture in `docs/architecture.md` is the dependency graph: every
/// `a --> b` edge of its diagram is a `lameduck-b` in `a`'s
/// `[dependencies]`, and every such dependency is drawn.
#[test]
fn the_crate_picture_in_the_docs_is_the_real_graph() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let drawn: BTreeSet<(String, String)> = doc
        .lines()
        .filter_map(|l| l.trim().split_once(" --> "))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .collect();
    let mut real = BTreeSet::new();
    for entry in fs::read_dir(root.join("crates")).expect("crates/ reads") {
        let manifest = entry.expect("a crate").path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let name = package_name(&text);
        for dep in normal_dependencies(&text) {
            if let Some(dep) = dep.strip_prefix("lameduck-") {
                real.insert((short(&name), dep.to_string()));
            }
        }
    }
    assert!(real.len() > 10, "only {} edges found", real.len());
    let missing: Vec<_> = real.difference(&drawn).collect();
    let extra: Vec<_> = drawn.difference(&real).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/architecture.md's diagram is not the crate graph: not drawn {missing:?}, drawn but not real {extra:?}"
    );
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// `lameduck` is the binary; `lameduck-x` is drawn as `x`.
fn short(package: &str) -> String {
    package
        .strip_prefix("lameduck-")
        .unwrap_or(package)
        .to_string()
}

/// The names in the `[dependencies]` table (not dev- or build-).
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside {
            if let Some((key, _)) = line.split_once('=') {
                let key = key.trim().split('.').next().unwrap_or("").trim();
                if !key.is_empty() && !key.starts_with('#') {
                    out.push(key.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn the_checker_sees_a_cycle_in_grouped_imports() {
    let dir = std::env::temp_dir().join(format!("ld-arch-{}", std::process::id()));
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::write(dir.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(dir.join("a/mod.rs"), "use crate::{b::X, Y};\n").unwrap();
    fs::write(
        dir.join("b.rs"),
        "// crate::a in a comment\nfn f() { crate::a::g() }\n",
    )
    .unwrap();
    let cycles = strongly_connected(&graph(&dir));
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles, vec![vec!["a".to_string(), "b".to_string()]]);
}

/// Module path → the modules its code uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph(src: &Path) -> Graph {
    let files = modules(src);
    let mut graph = Graph::new();
    for (module, file) in &files {
        let text = code_of(&fs::read_to_string(file).unwrap_or_default());
        let used = crate_paths(&text)
            .filter_map(|path| longest_module(&path, &files))
            .filter(|other| !related(module, other))
            .collect();
        graph.insert(module.clone(), used);
    }
    graph
}

/// Every `.rs` file under `src` (binaries under `bin/` left out) by module path.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    out
}

/// The text without line comments and without the unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after `crate::`, one per item of a grouped use.
fn crate_paths(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("crate::").flat_map(move |(i, m)| {
        let rest = &text[i + m.len()..];
        match rest.strip_prefix('{') {
            Some(group) => top_level_items(group),
            None => vec![path_prefix(rest)],
        }
    })
}

/// `a::b, c::{d, e}, F}` → `["a::b", "c::", "F"]` (up to the closing brace).
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut depth = 0;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => items.push(String::new()),
            _ if depth == 0 => items.last_mut().unwrap().push(c),
            _ => {}
        }
    }
    items.iter().map(|s| path_prefix(s.trim())).collect()
}

fn path_prefix(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect()
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_module(path: &str, files: &BTreeMap<String, PathBuf>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| files.contains_key(m))
}

/// The same module, or one inside the other.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// The groups of two or more modules that reach each other (Tarjan's
/// algorithm), each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(w: &mut Walk<'g>, v: &'g str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for u in w.graph.get(v).into_iter().flatten() {
            let u = u.as_str();
            if !w.index.contains_key(u) {
                visit(w, u);
                let low = w.low[v].min(w.low[u]);
                w.low.insert(v, low);
            } else if w.stack.contains(&u) {
                let low = w.low[v].min(w.index[u]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let at = w.stack.iter().rposition(|x| *x == v).unwrap();
            let mut group: Vec<String> = w.stack.drain(at..).map(str::to_string).collect();
            if group.len() > 1 {
                group.sort();
                w.found.push(group);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}
