//! No cycles between a crate's top-level modules (the files and directories under `src/`),
//! counting `crate::x` and `super::x` references in non-test code. A cycle means two modules
//! are one in disguise; the known ones are listed below until they are taken apart.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::{members, module_tree, ModuleFile};

/// Cycles tolerated for now (none since issue 13), each as its modules from the alphabetically first one (the
/// first comes back at the end). Delete an entry as soon as its cycle is gone (the test fails
/// on a stale entry, so the list only shrinks).
const CYCLES_ALLOWED: &[(&str, &[&str])] = &[];

/// A reference's target: the top-level module named right after `crate::` or after the
/// `super::`s that climb to the crate root; for a `{...}` group, each of its first names.
fn targets(path: &[String], code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for keyword in ["crate::", "super::"] {
        let mut search = 0;
        while let Some(at) = code[search..].find(keyword).map(|n| search + n) {
            search = at + keyword.len();
            let before = at.checked_sub(1).map(|n| bytes[n]);
            if before
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b':')
            {
                continue;
            }
            // `super::` climbs one module per occurrence; `crate::` goes to the root.
            let mut depth = if keyword == "crate::" { 0 } else { path.len().saturating_sub(1) };
            let mut rest = &code[search..];
            while let Some(after) = rest.strip_prefix("super::") {
                depth = depth.saturating_sub(1);
                rest = after;
            }
            if depth > 0 {
                continue; // inside the same top-level module
            }
            found.extend(first_names(rest.trim_start()));
        }
    }
    found
}

/// `a::b` gives `a`; `{a::b, c, d::{e}}` gives `a`, `c`, `d`.
fn first_names(rest: &str) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.chars().take_while(|&c| c.is_alphanumeric() || c == '_').collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let (mut depth, mut start) = (0usize, true);
    for (index, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                names.push(ident(&group[index..]));
                start = false;
            }
            _ => {}
        }
    }
    names
}

/// The names the crate root re-exports (`pub use module::{A, b::C as D};`), each with the
/// top-level module it comes from: `crate::A` is a reference to that module.
fn reexports(root_code: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let mut search = 0;
    while let Some(at) = root_code[search..].find("pub use ").map(|n| search + n) {
        let end = root_code[at..].find(';').map_or(root_code.len(), |n| at + n);
        search = end;
        let statement = &root_code[at + "pub use ".len()..end];
        let Some((module, items)) = statement.split_once("::") else { continue };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            // The name an item is known by: after `as`, else its last path segment.
            let name = item.split(" as ").last().unwrap_or(item).rsplit("::").next();
            let name = name.unwrap_or(item).trim().trim_matches(|c| c == '{' || c == '}');
            if !name.is_empty() && name != "*" {
                names.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    names
}

/// Edges between top-level modules: module -> the modules it refers to.
fn graph(files: &[ModuleFile]) -> BTreeMap<String, BTreeSet<String>> {
    let tops: BTreeSet<&String> = files.iter().filter_map(|file| file.path.first()).collect();
    let root = files.iter().find(|file| file.path.is_empty());
    let reexported = root.map(|root| reexports(&root.code)).unwrap_or_default();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(top) = file.path.first() else { continue }; // the crate root itself
        for target in targets(&file.path, &file.code) {
            let target = reexported.get(&target).cloned().unwrap_or(target);
            if &target != top && tops.contains(&target) {
                edges.entry(top.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// Every elementary cycle, each from its smallest module (which is repeated at the end).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    const CYCLES_MAX: usize = 1_000;
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first over modules greater than `start`, without recursion.
        let mut path = vec![start.clone()];
        let mut stack: Vec<Vec<String>> =
            vec![edges[start].iter().rev().cloned().collect::<Vec<_>>()];
        while let Some(choices) = stack.last_mut() {
            let Some(next) = choices.pop() else {
                stack.pop();
                path.pop();
                continue;
            };
            if &next == start {
                let mut cycle = path.clone();
                cycle.push(start.clone());
                found.push(cycle);
                assert!(found.len() < CYCLES_MAX, "more than {CYCLES_MAX} cycles");
            } else if next > *start && !path.contains(&next) {
                let choices =
                    edges.get(&next).map_or(Vec::new(), |to| to.iter().rev().cloned().collect());
                path.push(next);
                stack.push(choices);
            }
        }
    }
    found
}

#[test]
fn no_module_cycles() {
    let mut broken = Vec::new();
    let mut seen: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    for member in members() {
        let src = member.dir.join("src");
        let root = [src.join("lib.rs"), src.join("main.rs")].into_iter().find(|root| root.exists());
        let Some(root) = root else { continue };
        for cycle in cycles(&graph(&module_tree(&root))) {
            let allowed = CYCLES_ALLOWED.iter().any(|(name, allowed)| {
                *name == member.name && allowed.iter().copied().eq(cycle.iter().map(String::as_str))
            });
            println!(
                "{}: {}{}",
                member.name,
                cycle.join(" -> "),
                if allowed { " (allowed)" } else { "" }
            );
            if !allowed {
                broken.push(format!("{}: a new module cycle: {}", member.name, cycle.join(" -> ")));
            }
            seen.insert((member.name.clone(), cycle));
        }
    }
    for (name, cycle) in CYCLES_ALLOWED {
        let cycle: Vec<String> = cycle.iter().map(|module| module.to_string()).collect();
        if !seen.contains(&(name.to_string(), cycle.clone())) {
            broken.push(format!(
                "{name}: {} is gone; delete it from CYCLES_ALLOWED",
                cycle.join(" -> ")
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn resolves_references() {
    let path = |parts: &[&str]| parts.iter().map(|part| part.to_string()).collect::<Vec<_>>();
    let code =
        "use crate::{a::X, b, c::{d, e}};\nuse super::f::G;\nuse super::super::h;\n$crate::i";
    assert_eq!(targets(&path(&["m", "n"]), code), ["a", "b", "c", "h"]);
    assert_eq!(targets(&path(&["m"]), "super::f::G"), ["f"]);
    let edges: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")].iter().fold(
            BTreeMap::new(),
            |mut edges, (from, to)| {
                edges.entry(from.to_string()).or_default().insert(to.to_string());
                edges
            },
        );
    assert_eq!(cycles(&edges), [path(&["a", "b", "a"]), path(&["a", "b", "c", "a"])]);
    let names = reexports("pub use a::{B, c::D, E as F};\npub use g::H;\npub(crate) use i::J;");
    let names: Vec<(&str, &str)> = names.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(names, [("B", "a"), ("D", "a"), ("F", "a"), ("H", "g")]);
}
