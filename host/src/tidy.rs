//! The rules of ARCHITECTURE.md that the build checks, in the manner of rust-analyzer's
//! `tidy.rs`: this test reads the sources of `host/src` and fails when
//!
//! - a lower box imports a module it has no arrow to: the arrows are the block between the
//!   `tidy:arrows` markers of ARCHITECTURE.md, read here, so the page and the check are one
//!   text (an arrow no code uses fails too, so the page stays exact);
//! - `wasmtime` is used outside `plugin/`, `rhai` outside `playbook/`, `sqlx` or SQL text
//!   outside `store/`;
//! - a file git tracks still has merge conflict markers.
//!
//! It reads the code, not the comments; `super::` paths are not followed (they stay inside a
//! box unless they climb out of it, which the code does not do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = env!("CARGO_MANIFEST_DIR");

/// A module of the crate as the arrows name it: `store`, `humans::questions`.
type Module = String;

/// The arrows of ARCHITECTURE.md: each lower box and the modules it may import.
fn arrows() -> BTreeMap<Module, BTreeSet<Module>> {
    let page = std::fs::read_to_string(Path::new(SRC).join("../ARCHITECTURE.md")).unwrap();
    let start = page
        .find("<!-- tidy:arrows -->")
        .expect("ARCHITECTURE.md has a tidy:arrows block");
    let end = page
        .find("<!-- /tidy:arrows -->")
        .expect("the tidy:arrows block ends");
    let mut out = BTreeMap::new();
    for line in page[start..end].lines().filter(|l| l.contains('→')) {
        let (from, to) = line.split_once('→').unwrap();
        let from = from.trim().to_owned();
        let to: BTreeSet<Module> = to
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty() && *m != "nothing")
            .map(str::to_owned)
            .collect();
        assert!(
            out.insert(from.clone(), to).is_none(),
            "{from} has two lines of arrows"
        );
    }
    assert!(
        !out.is_empty(),
        "the tidy:arrows block of ARCHITECTURE.md lists no arrows"
    );
    out
}

/// Every `.rs` file under `dir`, with its module path (`store/runs.rs` → `store::runs`).
fn sources(dir: &Path) -> Vec<(Module, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                out.push((parts.join("::"), path));
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (line comments, doc comments, and block comments
/// that start a line), line by line with their numbers.
fn code(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if in_block {
            in_block = !line.contains("*/");
            continue;
        }
        if trimmed.starts_with("/*") {
            in_block = !line.contains("*/");
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, strip_trailing_comment(line).to_owned()));
    }
    out
}

/// `line` up to a `//` that is not inside a string literal.
fn strip_trailing_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// The paths a line names under `crate::`, with `use` groups expanded:
/// `use crate::{a::b, c::{d, e}}` names `a::b`, `c::d` and `c::e`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::`
        }
        let (paths, used) = use_tree(rest);
        out.extend(paths);
        rest = &rest[used..];
    }
    out
}

/// Read a use tree at the start of `text`: its expanded paths and how many bytes it took.
fn use_tree(text: &str) -> (Vec<String>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        if bytes.get(i) == Some(&b'{') {
            let mut paths = Vec::new();
            i += 1;
            loop {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    i += 1;
                }
                if bytes.get(i).is_none_or(|b| *b == b'}') {
                    i += 1;
                    break;
                }
                let (inner, used) = use_tree(&text[i..]);
                if used == 0 {
                    i += 1;
                    continue;
                }
                paths.extend(inner.into_iter().map(|p| join(&prefix, &p)));
                i += used;
            }
            return (paths, i);
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        if i == start {
            return (
                if prefix.is_empty() {
                    vec![]
                } else {
                    vec![prefix.join("::")]
                },
                i,
            );
        }
        prefix.push(text[start..i].to_owned());
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix.join("::")], i);
        }
    }
}

fn join(prefix: &[String], path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{}::{path}", prefix.join("::"))
    }
}

/// Whether `path` is `module` or inside it.
fn within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

/// The box (a key of the arrows) a source module belongs to, if it is checked.
fn box_of<'a>(module: &str, arrows: &'a BTreeMap<Module, BTreeSet<Module>>) -> Option<&'a Module> {
    // The most specific box: `humans::questions` before `humans`.
    arrows
        .keys()
        .filter(|b| within(module, b))
        .max_by_key(|b| b.len())
}

#[test]
fn lower_boxes_import_only_along_their_arrows() {
    let arrows = arrows();
    let src = Path::new(SRC).join("src");
    let all: BTreeSet<Module> = sources(&src).into_iter().map(|(m, _)| m).collect();
    for (from, to) in &arrows {
        for m in std::iter::once(from).chain(to) {
            assert!(
                all.iter().any(|s| within(s, m)),
                "ARCHITECTURE.md names `{m}` in its arrows, and host/src has no such module"
            );
        }
    }
    let mut wrong = Vec::new();
    let mut used: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    for (module, path) in sources(&src) {
        let Some(from) = box_of(&module, &arrows) else {
            continue;
        };
        let allowed = &arrows[from];
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code(&text) {
            for target in crate_paths(&line) {
                if within(&target, from) {
                    continue;
                }
                match allowed.iter().find(|a| within(&target, a)) {
                    Some(a) => {
                        used.entry(from).or_default().insert(a);
                    }
                    None => wrong.push(format!(
                        "{}:{n}: `{from}` imports `crate::{target}`, and ARCHITECTURE.md gives it no arrow there",
                        path.strip_prefix(&src).unwrap().display()
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the arrows:\n{}",
        wrong.join("\n")
    );
    let mut unused = Vec::new();
    for (from, to) in &arrows {
        for t in to {
            if !used.get(from).is_some_and(|u| u.contains(t)) {
                unused.push(format!("{from} → {t}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "ARCHITECTURE.md allows arrows no code uses (remove them, so the page stays exact): {}",
        unused.join(", ")
    );
}

/// Where each foreign part may be used: the crate path or SQL text, and the one box that owns it.
#[test]
fn wasmtime_rhai_and_sql_stay_in_their_box() {
    let src = Path::new(SRC).join("src");
    let sql = regex::Regex::new(
        r#""[^"]*\b(SELECT\s|INSERT INTO|DELETE FROM|CREATE TABLE|CREATE INDEX|UPDATE [a-z_]+ SET)"#,
    )
    .unwrap();
    let owners: [(&str, regex::Regex); 3] = [
        ("plugin", regex::Regex::new(r"\bwasmtime(_[a-z_]+)?::").unwrap()),
        ("playbook", regex::Regex::new(r"\brhai::").unwrap()),
        ("store", regex::Regex::new(r"\bsqlx::").unwrap()),
    ];
    let mut wrong = Vec::new();
    for (module, path) in sources(&src) {
        let shown = path.strip_prefix(&src).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code(&text) {
            for (owner, pattern) in &owners {
                if pattern.is_match(&line) && !within(&module, owner) {
                    wrong.push(format!("{shown}:{n}: `{}` outside {owner}/", pattern.as_str()));
                }
            }
            if sql.is_match(&line) && !within(&module, "store") && module != "tidy" {
                wrong.push(format!("{shown}:{n}: SQL text outside store/"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "foreign parts outside their box:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_of_paths_sees_groups_and_skips_comments() {
    assert_eq!(
        crate_paths("use crate::{a::b, c::{d, e::F}}; let x = crate::g::h(1);"),
        ["a::b", "c::d", "c::e::F", "g::h"]
    );
    assert_eq!(crate_paths("mycrate::x"), Vec::<String>::new());
    let lines = code("use crate::a;\n// use crate::b;\n/// crate::c\nlet s = \"//\"; // crate::d\n");
    let paths: Vec<String> = lines.iter().flat_map(|(_, l)| crate_paths(l)).collect();
    assert_eq!(paths, ["a"]);
    assert!(within("humans::questions", "humans") && !within("humansx", "humans"));
}

/// A merge left half done: ARCHITECTURE.md once carried both sides of a conflict, markers
/// and all, through a passing CI. Every text file git tracks is read (binary ones skipped).
#[test]
fn no_tracked_file_keeps_merge_conflict_markers() {
    let root = Path::new(SRC).join("..");
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git runs (the tests run in a clone)");
    assert!(listed.status.success(), "git ls-files failed: {listed:?}");
    // Built here so that this file does not carry them itself.
    let (ours, theirs) = (format!("{} ", "<".repeat(7)), format!("{} ", ">".repeat(7)));
    let mut found = Vec::new();
    let mut read = 0;
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        let Ok(bytes) = std::fs::read(root.join(&*name)) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        read += 1;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with(&ours) || line.starts_with(&theirs) {
                found.push(format!("{name}:{}: {line}", n + 1));
            }
        }
    }
    assert!(read > 100, "only {read} tracked text files read");
    assert!(
        found.is_empty(),
        "merge conflict markers left in:\n{}",
        found.join("\n")
    );
}
