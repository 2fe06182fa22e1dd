//! Architecture check (issue 11, item 7): no import cycle between modules, and imports only
//! go down the layer order in `LAYERS`.
//!
//! It reads `src/` as text, with no help from the compiler, so it stays simple: a small lexer
//! drops comments, string literals and `#[cfg(test)]` items (test code may reach anywhere),
//! then every `use` tree and every inline path starting with `crate::`, `self::`, `super::`
//! or a child module's name is resolved to the file-module (a `.rs` file) it lands in.
//! Declaring `mod child;` is no import, and neither is a module using its own items; a
//! parent's `use child::X` is. Only lib.rs may be named as the crate root: elsewhere a
//! `crate::start` (a re-export in lib.rs) must name the module that defines it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// Imports flow one way: base → config → body/outbound → fleet → token → state → pipeline → server
/// → app → cli, so each layer can be read, tested and changed without the ones above it.
/// `(top-level module, rank, only)`: a module may use its own top-level module and every
/// module of a lower rank; where `only` is set, exactly the modules it lists instead.
const LAYERS: &[(&str, u8, Option<&[&str]>)] = &[
    ("base", 0, None),
    // Leaves beside base: facts about Adobe's APIs, the metric series, log-line formatting.
    ("adobe", 0, Some(&["base"])),
    ("metrics", 0, Some(&["base"])),
    ("logfmt", 0, Some(&["base"])),
    ("config", 1, None),
    // The local fake Adobe sits between config and body: the layers from body up may use
    // it, but it must not grow a dependency on the proxy it imitates.
    ("sandbox", 1, Some(&["base", "adobe", "logfmt", "metrics"])),
    ("body", 2, None),
    ("outbound", 2, None),
    // What replicas share (in-process, or on Redis with `[shared]`): below token and state,
    // which decide through it.
    ("fleet", 3, None),
    ("token", 4, None),
    ("state", 5, None),
    ("pipeline", 6, None),
    ("server", 7, None),
    ("app", 8, None),
    ("cli", 9, None),
];

/// How the crate root (src/lib.rs) is named in the graph and in messages.
const ROOT: &str = "crate";

#[test]
fn src_has_no_import_cycles_and_respects_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    assert!(!files.is_empty(), "no .rs files under {}", src.display());
    let findings = check(&files);
    assert!(findings.report.is_empty(), "\n{}", findings.report);
}

/// Where a reference is written: shown in failures so the fix is obvious.
#[derive(Debug)]
struct Site {
    file: String,
    line: usize,
    path: String,
    text: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{} `{}`", self.file, self.line, self.path)
    }
}

/// File-modules (`crate`, `token`, `token::ims`, ...) with their files, and for each edge
/// `from → to` the first place it is written.
#[derive(Debug, Default)]
struct Graph {
    modules: BTreeMap<String, String>,
    edges: BTreeMap<String, BTreeMap<String, Site>>,
}

impl Graph {
    fn edges_from(&self, v: &str) -> impl Iterator<Item = (&String, &Site)> {
        self.edges.get(v).into_iter().flatten()
    }
}

struct Findings {
    cycles: Vec<Vec<String>>,
    layering: Vec<String>,
    /// Both of the above, for a person; empty when all is well.
    report: String,
}

/// `(path under root with '/', contents)` of every `.rs` file under `root`, sorted.
fn read_tree(root: &Path) -> Vec<(String, String)> {
    let (mut files, mut dirs) = (Vec::new(), vec![root.to_path_buf()]);
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("a readable UTF-8 .rs file");
                let rel = path.strip_prefix(root).expect("a path under root");
                files.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    files.sort();
    files
}

/// `lib.rs` → root, `a.rs` or `a/mod.rs` → `a`, `a/b.rs` → `a::b`. `main.rs` and `bin/`
/// are binary crates of their own (their `crate::` is not the library): skipped.
fn module_of(rel: &str) -> Option<Vec<String>> {
    let stem = rel.strip_suffix(".rs")?;
    if stem == "main" || stem.starts_with("bin/") {
        return None;
    }
    let mut segs: Vec<String> = stem.split('/').map(String::from).collect();
    if stem == "lib" || segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    Some(segs)
}

fn key(module: &[String]) -> String {
    if module.is_empty() {
        ROOT.to_string()
    } else {
        module.join("::")
    }
}

/// The whole check over `(path under src, contents)` pairs: real files or a test's.
fn check(files: &[(String, String)]) -> Findings {
    let graph = build_graph(files);
    let (cycles, layering) = (find_cycles(&graph), layer_problems(&graph));
    let mut report: String = cycles.iter().map(|scc| render_cycle(&graph, scc)).collect();
    if !layering.is_empty() {
        report +=
            "imports against the layer order (see LAYERS in tests/operator/architecture.rs):\n";
        report.extend(layering.iter().map(|problem| format!("  {problem}\n")));
    }
    Findings {
        cycles,
        layering,
        report,
    }
}

/// Lex each file, collect its paths, and keep those that land in another file-module.
fn build_graph(files: &[(String, String)]) -> Graph {
    let modules: Vec<(Vec<String>, &String, &String)> = files
        .iter()
        .filter_map(|(rel, text)| Some((module_of(rel)?, rel, text)))
        .collect();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.0.clone()).collect();
    let mut graph = Graph::default();
    for (module, rel, text) in &modules {
        graph.modules.insert(key(module), format!("src/{rel}"));
        let lines: Vec<&str> = text.lines().collect();
        for (inline, segs, line) in raw_paths(&drop_cfg_test(&lex(text))) {
            let here = [module.clone(), inline].concat();
            match resolve(&segs, &here, &known) {
                // A module using its own items, or a path out of the crate: no edge.
                Some(to) if &to != module => {
                    let text = lines.get(line - 1).map_or("", |l| l.trim()).to_string();
                    let site = Site {
                        file: format!("src/{rel}"),
                        line,
                        path: segs.join("::"),
                        text,
                    };
                    let edges = graph.edges.entry(key(module)).or_default();
                    edges.entry(key(&to)).or_insert(site);
                }
                _ => {}
            }
        }
    }
    graph
}

/// A token: an identifier or keyword, `::`, or one other character. Comments and string
/// and character literals never become tokens.
#[derive(Clone, Debug)]
struct Tok {
    text: String,
    line: usize,
}

fn is_word(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |j: usize| c.get(j).copied().unwrap_or('\0');
    let find = |from: usize, ch: char| (from..c.len()).find(|&j| c[j] == ch).unwrap_or(c.len());
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < c.len() {
        let (token, next) = match (c[i], at(i + 1)) {
            ('/', '/') => (None, find(i, '\n')),
            ('/', '*') => (None, end_of_block_comment(&c, i)),
            ('"', _) => (None, end_of_string(&c, i + 1, None)),
            // '\n', '\'', '\u{..}' and 'x' are characters; any other quote starts a lifetime.
            ('\'', '\\') => (None, find(i + 3, '\'') + 1),
            ('\'', _) if at(i + 2) == '\'' => (None, i + 3),
            (ch, _) if is_word(ch) => word_at(&c, i),
            (':', ':') => (Some("::".to_string()), i + 2),
            (ch, _) if ch.is_whitespace() => (None, i + 1),
            (ch, _) => (Some(ch.to_string()), i + 1),
        };
        out.extend(token.map(|text| Tok { text, line }));
        line += c[i..next.min(c.len())]
            .iter()
            .filter(|&&ch| ch == '\n')
            .count();
        i = next;
    }
    out
}

/// The identifier or keyword at `i`, or (`None`) the raw string it starts: `r#"..."#`.
fn word_at(c: &[char], i: usize) -> (Option<String>, usize) {
    let end = (i..c.len()).find(|&j| !is_word(c[j])).unwrap_or(c.len());
    let word: String = c[i..end].iter().collect();
    let hashes = c[end..].iter().take_while(|&&ch| ch == '#').count();
    if matches!(word.as_str(), "r" | "br" | "cr") && c.get(end + hashes) == Some(&'"') {
        (None, end_of_string(c, end + hashes + 1, Some(hashes)))
    } else {
        (Some(word), end)
    }
}

/// Just past the `*/` closing the block comment at `i`; block comments nest.
fn end_of_block_comment(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        match (c[i], c[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') => (depth, i) = (depth - 1, i + 2),
            _ => i += 1,
        }
        if depth == 0 {
            return i;
        }
    }
    c.len()
}

/// Just past the closing quote, from just after the opening one; `raw_hashes` is `None`
/// for an ordinary string (backslash escapes) and the number of `#`s for a raw one.
fn end_of_string(c: &[char], mut i: usize, raw_hashes: Option<usize>) -> usize {
    while i < c.len() {
        match (c[i], raw_hashes) {
            ('\\', None) => i += 1, // skips the escaped character, which may be '"'
            ('"', None) => return i + 1,
            ('"', Some(n)) if (1..=n).all(|k| c.get(i + k) == Some(&'#')) => return i + 1 + n,
            _ => {}
        }
        i += 1;
    }
    c.len()
}

/// Drops every item under `#[cfg(test)]` (the usual `mod tests { ... }`, but also a lone
/// test-only `use` or `fn`), and the whole file under `#![cfg(test)]`.
fn drop_cfg_test(toks: &[Tok]) -> Vec<Tok> {
    let starts_with = |i: usize, pattern: &[&str]| {
        (pattern.iter().enumerate()).all(|(k, p)| toks.get(i + k).is_some_and(|t| t.text == *p))
    };
    let (mut out, mut i) = (Vec::new(), 0);
    while i < toks.len() {
        if starts_with(i, &["#", "!", "[", "cfg", "(", "test", ")", "]"]) {
            return Vec::new();
        } else if starts_with(i, &["#", "[", "cfg", "(", "test", ")", "]"]) {
            i = end_of_item(toks, i + 7);
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// Just past the item starting at `i` (its other attributes included): after its `;` or
/// `{ ... }` block, whichever comes first outside brackets. A `,` or the enclosing `}` also
/// ends it (a test-only field, variant or match arm), so no code after it is skipped.
fn end_of_item(toks: &[Tok], mut i: usize) -> usize {
    let (mut brackets, mut braces) = (0usize, 0usize);
    while let Some(tok) = toks.get(i) {
        match (tok.text.as_str(), brackets, braces) {
            ("}", 0, 0) => return i,
            (";" | ",", 0, 0) | ("}", 0, 1) => return i + 1,
            ("(" | "[", ..) => brackets += 1,
            (")" | "]", ..) => brackets = brackets.saturating_sub(1),
            ("{", ..) => braces += 1,
            ("}", ..) => braces = braces.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    i
}

fn is_ident(text: &str) -> bool {
    text.starts_with(|ch: char| ch.is_alphabetic() || ch == '_')
}

/// `(inline mods it sits in, segments, line)` for every path of every `use` tree and every
/// other path of two or more segments. Inline `mod name { ... }` blocks are tracked so
/// that `super::` inside one is resolved from there.
fn raw_paths(toks: &[Tok]) -> Vec<(Vec<String>, Vec<String>, usize)> {
    let text = |i: usize| toks.get(i).map_or("", |t| t.text.as_str());
    let before = |i: usize, k: usize| if i >= k { text(i - k) } else { "" };
    let (mut out, mut i, mut depth) = (Vec::new(), 0, 0usize);
    let mut inline: Vec<(String, usize)> = Vec::new(); // (name, brace depth inside it)
    while i < toks.len() {
        let names: Vec<String> = inline.iter().map(|(name, _)| name.clone()).collect();
        match text(i) {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if text(i + 2) == "{" => inline.push((text(i + 1).to_string(), depth + 1)),
            "use" => {
                let mut found = Vec::new();
                i = parse_use_tree(toks, i + 1, Vec::new(), &mut found);
                out.extend(
                    found
                        .into_iter()
                        .map(|(segs, line)| (names.clone(), segs, line)),
                );
                continue;
            }
            // A path's first segment; `pub(in crate::x)` restricts visibility, it imports nothing.
            t if is_ident(t)
                && text(i + 1) == "::"
                && before(i, 1) != "::"
                && (before(i, 1), before(i, 2)) != ("in", "(") =>
            {
                let (mut segs, line) = (vec![t.to_string()], toks[i].line);
                while text(i + 1) == "::" && is_ident(text(i + 2)) {
                    segs.push(text(i + 2).to_string());
                    i += 2;
                }
                out.push((names, segs, line));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parses the use tree at `i` (`a::b::{c, d::{self, e as f}, *}`), pushing each full path
/// with the line of its last segment; returns the index just past the tree.
fn parse_use_tree(
    toks: &[Tok],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let text = |i: usize| toks.get(i).map_or("", |t| t.text.as_str());
    loop {
        match text(i) {
            // `use ::name` is an external crate: give it a head that resolves to nothing.
            "::" if prefix.is_empty() => (prefix, i) = (vec!["::".to_string()], i + 1),
            "::" => i += 1,
            "{" => {
                i += 1;
                while !matches!(text(i), "}" | "") {
                    let next = parse_use_tree(toks, i, prefix.clone(), out);
                    i = if text(next) == "," {
                        next + 1
                    } else {
                        next.max(i + 1)
                    };
                }
                return i + 1;
            }
            "*" => {
                out.push((prefix, toks[i].line));
                return i + 1;
            }
            t if is_ident(t) => {
                // `a::{self, b}`: the `self` names `a` itself.
                if t != "self" || prefix.is_empty() {
                    prefix.push(t.to_string());
                }
                if text(i + 1) != "::" {
                    out.push((prefix, toks[i].line));
                    return if text(i + 1) == "as" { i + 3 } else { i + 1 };
                }
                i += 2;
            }
            _ => return i, // `;`, or something this simple parser does not know
        }
    }
}

/// The file-module a path written in module `here` lands in: the longest prefix of its
/// absolute form that is a file-module. `None` when it leaves the crate (std, a dependency).
fn resolve(segs: &[String], here: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut abs, rest) = match segs.first()?.as_str() {
        "crate" => (Vec::new(), &segs[1..]),
        "self" => (here.to_vec(), &segs[1..]),
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            (here[..here.len().checked_sub(ups)?].to_vec(), &segs[ups..])
        }
        // `child::f()` or `use child::X` in a parent: the parent uses its child.
        child if known.contains(&[here, &[child.to_string()]].concat()) => (here.to_vec(), segs),
        _ => return None,
    };
    abs.extend(rest.iter().cloned());
    while !known.contains(&abs) {
        abs.pop()?;
    }
    Some(abs)
}

/// Strongly connected components of more than one module (Tarjan's algorithm). No module
/// has an edge to itself here, so these are exactly the import cycles.
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    #[derive(Default)]
    struct Tarjan<'g> {
        index_low: BTreeMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, graph: &'g Graph, v: &'g str) {
            let n = self.index_low.len();
            self.index_low.insert(v, (n, n));
            self.stack.push(v);
            for (w, _) in graph.edges_from(v) {
                let low = match self.index_low.get(w.as_str()) {
                    None => {
                        self.visit(graph, w);
                        self.index_low[w.as_str()].1
                    }
                    Some(&(index, _)) if self.stack.contains(&w.as_str()) => index,
                    Some(_) => continue, // finished, in another component
                };
                let v_low = &mut self.index_low.get_mut(v).expect("v is visited").1;
                *v_low = (*v_low).min(low);
            }
            let (index, low) = self.index_low[v];
            if index == low {
                let at = self.stack.iter().rposition(|&w| w == v);
                let at = at.expect("v is on the stack");
                let mut scc: Vec<String> = self.stack.drain(at..).map(String::from).collect();
                if scc.len() > 1 {
                    scc.sort();
                    self.found.push(scc);
                }
            }
        }
    }
    let mut tarjan = Tarjan::default();
    for v in graph.modules.keys() {
        if !tarjan.index_low.contains_key(v.as_str()) {
            tarjan.visit(graph, v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// A cycle's modules, a shortest loop through its first module, and every edge inside it
/// with the first line that makes it.
fn render_cycle(graph: &Graph, scc: &[String]) -> String {
    let inside = |v: &str| graph.edges_from(v).filter(|(w, _)| scc.contains(w));
    // Breadth-first from the first module until the search comes back to it.
    let start = scc[0].as_str();
    let (mut came_from, mut queue) = (BTreeMap::new(), VecDeque::from([start]));
    while let Some(v) = queue.pop_front().filter(|_| !came_from.contains_key(start)) {
        for (w, _) in inside(v) {
            came_from.entry(w.as_str()).or_insert_with(|| {
                queue.push_back(w.as_str());
                v
            });
        }
    }
    let mut loop_back = vec![start];
    while let Some(&v) = came_from.get(loop_back[loop_back.len() - 1]) {
        loop_back.push(v);
        if v == start {
            break;
        }
    }
    loop_back.reverse();
    let mut out = format!("import cycle among {} modules: ", scc.len());
    out += &format!("{}\n  e.g. {}\n", scc.join(", "), loop_back.join(" -> "));
    for v in scc {
        for (w, site) in inside(v) {
            out += &format!("    {v} -> {w}   {site}   | {}\n", site.text);
        }
    }
    out
}

/// Top-level modules with no rank, references to the crate root, and edges against `LAYERS`.
fn layer_problems(graph: &Graph) -> Vec<String> {
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    let layer = |top: &str| LAYERS.iter().find(|l| l.0 == top);
    let mut problems = Vec::new();
    for (module, file) in &graph.modules {
        if module != ROOT && !module.contains("::") && layer(module).is_none() {
            problems.push(format!(
                "`{module}` ({file}) has no rank: give it one in LAYERS"
            ));
        }
    }
    for (from, tos) in graph.edges.iter().filter(|(from, _)| *from != ROOT) {
        for (to, site) in tos {
            let (from_top, to_top) = (top(from), top(to));
            let (Some(f), Some(t)) = (layer(&from_top), layer(&to_top)) else {
                if to == ROOT {
                    problems.push(format!(
                        "{from} uses the crate root: {site}: name the module that defines \
                         it (crate::<module>::...), not lib.rs"
                    ));
                }
                continue; // an unknown module is reported above
            };
            let refusal = match f.2 {
                _ if from_top == to_top => None,
                Some(only) if !only.contains(&to_top.as_str()) => {
                    Some(format!("may use only {}", only.join(", ")))
                }
                None if t.1 >= f.1 => Some(format!("(rank {}) may use only lower ranks", f.1)),
                _ => None,
            };
            if let Some(may) = refusal {
                let rank = t.1;
                problems.push(format!(
                    "{from} uses {to} (rank {rank}), but {from_top} {may}: {site}"
                ));
            }
        }
    }
    problems
}

/// An in-memory src/ for the tests below: each file starts after a `== path` line.
fn tree(spec: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in spec.lines() {
        match (line.trim().strip_prefix("== "), files.last_mut()) {
            (Some(path), _) => files.push((path.to_string(), String::new())),
            (None, Some((_, text))) => *text += &format!("{line}\n"),
            (None, None) => {}
        }
    }
    files
}

#[test]
fn a_cycle_through_crate_and_super_paths_is_reported() {
    let findings = check(&tree(
        "== lib.rs
        pub mod p; pub mod r;
        == p/mod.rs
        pub mod q;
        pub struct P;
        fn f() { super::r::g() } // in a mod.rs, super is the folder's parent: the root
        == p/q.rs
        use super::P; // p::q's super is p
        pub struct Q;
        == r.rs
        use crate::{
            p::q::Q,
        };
        pub fn g() {}",
    ));
    assert_eq!(findings.cycles, [["p", "p::q", "r"]]);
    let report = &findings.report;
    assert!(report.contains("e.g. p -> r -> p::q -> p\n"), "{report}");
    assert!(
        report.contains("r -> p::q   src/r.rs:2 `crate::p::q::Q`"),
        "{report}"
    );
    assert!(
        report.contains("p -> r   src/p/mod.rs:3 `super::r::g`"),
        "{report}"
    );
}

#[test]
fn a_use_against_the_layer_order_is_reported() {
    let findings = check(&tree(
        "== lib.rs
        pub mod config; pub mod state; pub mod widgets;
        == config/mod.rs
        pub(crate) use crate::state::Snapshot;
        == state/mod.rs
        pub struct Snapshot;
        fn f() { crate::start() }
        == widgets.rs",
    ));
    assert!(findings.cycles.is_empty());
    let all = findings.layering.join("\n");
    assert_eq!(findings.layering.len(), 3, "{all}");
    assert!(
        all.contains("config uses state (rank 5), but config (rank 1)"),
        "{all}"
    );
    assert!(
        all.contains("state uses the crate root: src/state/mod.rs:2 `crate::start`"),
        "{all}"
    );
    assert!(
        all.contains("`widgets` (src/widgets.rs) has no rank"),
        "{all}"
    );
}

#[test]
fn comments_strings_and_test_modules_are_not_imports() {
    let files = tree(
        r####"== lib.rs
        pub mod base; pub mod config; pub mod state;
        == base.rs
        pub struct Thing;
        == config.rs
        //! Reads crate::state::Snapshot, see [`crate::state`].
        /// Unlike crate::state::x(), this /* crate::state /* nested */ crate::state */ is fine.
        const A: &str = "crate::state::S \" crate::state";
        const B: &str = r#"crate::state "quoted" crate::state"#;
        const C: (&[u8], char) = (br##"crate::state"##, '"');
        fn f<'a>(x: &'a str) -> char { '\'' }
        struct S { #[cfg(test)] probe: crate::state::P, kept: crate::base::Thing }
        #[cfg(test)]
        use crate::state::Only;
        #[cfg(test)]
        mod tests {
            use super::*;
            fn t() { crate::state::x(); super::super::state::y(); }
        }
        == state.rs
        #![cfg(test)]
        use crate::config::Later;"####,
    );
    let findings = check(&files);
    assert!(findings.report.is_empty(), "{}", findings.report);
    let graph = build_graph(&files);
    assert_eq!(graph.edges.keys().collect::<Vec<_>>(), ["config"]);
    assert_eq!(graph.edges["config"].keys().collect::<Vec<_>>(), ["base"]);
    assert_eq!(
        graph.edges["config"]["base"].line, 7,
        "code after all that is still read"
    );
}

#[test]
fn grouped_multi_line_uses_and_child_paths_resolve_to_file_modules() {
    let graph = build_graph(&tree(
        "== lib.rs
        pub mod a; pub mod b; pub mod user;
        == a.rs
        == b/mod.rs
        pub mod c; pub mod d; pub mod e;
        use c::Y;
        fn g() { d::h() }
        == b/c.rs
        == b/d.rs
        mod inner { fn i() { super::h(); self::j() } }
        == b/e.rs
        pub(in crate::b) fn k() {}
        == user.rs
        pub(crate) use crate::{
            a::X,
            b::{c::Y as Why, d, self},
        };
        fn f() { crate::b::c::make(); <crate::b::d::T as crate::a::Tr>::new(); }",
    ));
    let uses = |m: &str| {
        graph
            .edges
            .get(m)
            .map(|e| e.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(uses("crate"), None, "declaring `mod x;` is not an import");
    assert_eq!(
        uses("user").expect("user's edges"),
        ["a", "b", "b::c", "b::d"]
    );
    assert_eq!(uses("b").expect("b's edges"), ["b::c", "b::d"]);
    assert_eq!(
        uses("b::d"),
        None,
        "an inline module's super is its own file"
    );
    assert_eq!(uses("b::e"), None, "`pub(in path)` is no import");
    assert_eq!(graph.edges["user"]["b::c"].line, 3);
    assert_eq!(graph.edges["user"]["b::c"].path, "crate::b::c::Y");
}
