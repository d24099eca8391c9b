//! ARCHITECTURE.md's crate table is the truth about dependencies: each row names (in
//! backticks) what its crate may and must never depend on, and `cargo metadata` must agree.
//!
//! How a row reads: the first backticked word of the first cell is the crate. In "may depend
//! on", the backticked words are the only crates allowed as normal or build dependencies, or
//! the word "everything"/"anything" allows any. In "never depends on", the backticked words
//! are forbidden, "any workspace crate" forbids them all, and "nothing depends on" means no
//! workspace crate may depend on this one (not even as a dev-dependency).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::source::{cargo_metadata, read, workspace_root};

/// One row of the table.
#[derive(Debug)]
struct Row {
    /// `None`: anything.
    may: Option<BTreeSet<String>>,
    never: BTreeSet<String>,
    never_any_workspace_crate: bool,
    nothing_depends_on_it: bool,
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The rows of the `| crate | may depend on | never depends on |` table, by crate.
fn table(architecture: &str) -> BTreeMap<String, Row> {
    let mut lines = architecture.lines().skip_while(|line| {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        cells.get(1..4) != Some(&["crate", "may depend on", "never depends on"][..])
    });
    assert!(
        lines.next().is_some(),
        "ARCHITECTURE.md has no `| crate | may depend on | never depends on |` table"
    );
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, name, may, never, ..] = cells.as_slice() else {
            panic!("ARCHITECTURE.md: a table row without three cells: {line}");
        };
        let name = backticked(name).into_iter().next();
        let name = name.unwrap_or_else(|| panic!("ARCHITECTURE.md: no `crate` in row {line}"));
        let lower = never.to_lowercase();
        let may_anything = may.contains("everything") || may.contains("anything");
        let row = Row {
            may: (!may_anything).then(|| backticked(may).into_iter().collect()),
            never: backticked(never).into_iter().collect(),
            never_any_workspace_crate: lower.contains("any workspace crate"),
            nothing_depends_on_it: lower.contains("nothing depends on"),
        };
        rows.insert(name, row);
    }
    rows
}

/// Per workspace crate, its dependencies as (name, kind): kind "normal", "build" or "dev".
fn direct_dependencies() -> BTreeMap<String, Vec<(String, String)>> {
    let metadata = cargo_metadata(&["--no-deps"]);
    let packages = metadata["packages"].as_array().expect("metadata has packages");
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("a package has a name").to_string();
            let dependencies = package["dependencies"].as_array().expect("dependencies");
            let dependencies = dependencies
                .iter()
                .map(|dependency| {
                    let name = dependency["name"].as_str().expect("a dependency has a name");
                    let kind = dependency["kind"].as_str().unwrap_or("normal");
                    (name.to_string(), kind.to_string())
                })
                .collect();
            (name, dependencies)
        })
        .collect()
}

#[test]
fn dependency_table_matches_cargo_metadata() {
    let rows = table(&read(&workspace_root().join("ARCHITECTURE.md")));
    let crates = direct_dependencies();
    let workspace: BTreeSet<&String> = crates.keys().collect();
    let mut broken = Vec::new();
    for name in rows.keys().filter(|name| !workspace.contains(name)) {
        broken.push(format!("the table has a row for `{name}`, which is not a workspace crate"));
    }
    for (name, dependencies) in &crates {
        let Some(row) = rows.get(name) else {
            broken.push(format!("`{name}` is missing from ARCHITECTURE.md's crate table"));
            continue;
        };
        for (dependency, kind) in dependencies {
            if kind == "dev" {
                continue;
            }
            let is_workspace = workspace.contains(dependency);
            if row.never.contains(dependency) || (row.never_any_workspace_crate && is_workspace) {
                broken.push(format!("`{name}` depends on `{dependency}`, which its row forbids"));
            } else if row.may.as_ref().is_some_and(|may| !may.contains(dependency)) {
                broken.push(format!(
                    "`{name}` depends on `{dependency}`, which its row does not list as allowed"
                ));
            }
        }
    }
    for name in rows.iter().filter(|(_, row)| row.nothing_depends_on_it).map(|(name, _)| name) {
        for (dependent, dependencies) in &crates {
            if dependencies.iter().any(|(dependency, _)| dependency == name) {
                broken.push(format!("`{dependent}` depends on `{name}`, on which nothing may"));
            }
        }
    }
    assert!(broken.is_empty(), "ARCHITECTURE.md's crate table is broken:\n{}", broken.join("\n"));
}

/// Crates that must not be reachable from a crate through normal or build dependencies, at
/// any depth: what the table's direct rows cannot say.
const TRANSITIVE_ABSENCES: &[(&str, &[&str])] = &[
    // Applications link the client library: it must not bring the server's event loop or a
    // command-line parser (replay and ledger-bench reach the network only through it).
    ("protocol", &["clap", "mio"]),
    // ledger-replay is a read-only tool: never the server's event loop.
    ("replay", &["mio", "server"]),
    // Record framing never interprets a payload.
    ("journal", &["engine"]),
    // The settlement core is driven by the server, never the other way.
    ("settlement", &["server"]),
];

/// Everything reachable from `start` through normal and build dependencies, by package name.
fn reachable(resolve: &Value, names: &BTreeMap<String, String>, start: &str) -> BTreeSet<String> {
    let nodes = resolve["nodes"].as_array().expect("resolve has nodes");
    let edges: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|node| {
            let id = node["id"].as_str().expect("a node has an id");
            let deps = node["deps"].as_array().expect("a node has deps");
            let targets = deps
                .iter()
                .filter(|dep| {
                    let kinds = dep["dep_kinds"].as_array().expect("dep_kinds");
                    kinds.iter().any(|kind| kind["kind"].as_str() != Some("dev"))
                })
                .map(|dep| dep["pkg"].as_str().expect("a dep has a pkg"))
                .collect();
            (id, targets)
        })
        .collect();
    let start_id = names
        .iter()
        .find(|(_, name)| name.as_str() == start)
        .map(|(id, _)| id.as_str())
        .unwrap_or_else(|| panic!("no package {start}"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start_id];
    while let Some(id) = stack.pop() {
        for &next in edges.get(id).into_iter().flatten() {
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    seen.iter().map(|id| names[*id].clone()).collect()
}

#[test]
fn transitive_dependencies_stay_out() {
    let metadata = cargo_metadata(&[]);
    let packages = metadata["packages"].as_array().expect("metadata has packages");
    let names: BTreeMap<String, String> = packages
        .iter()
        .map(|package| {
            let id = package["id"].as_str().expect("a package has an id").to_string();
            (id, package["name"].as_str().expect("a package has a name").to_string())
        })
        .collect();
    let mut broken = Vec::new();
    for (start, absent) in TRANSITIVE_ABSENCES {
        let found = reachable(&metadata["resolve"], &names, start);
        for name in absent.iter().filter(|name| found.contains(**name)) {
            broken.push(format!("`{start}` pulls `{name}` (through its normal dependencies)"));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn reads_a_row() {
    let rows = table(
        "| crate | may depend on | never depends on |\n|---|---|---|\n\
         | `a` (`bin`) | `b`, std | `c`; any workspace crate |\n\
         | `d` | everything | — (nothing depends on `d`) |\n",
    );
    let a = &rows["a"];
    assert_eq!(a.may.as_ref().map(|may| may.len()), Some(1));
    assert!(a.never.contains("c") && a.never_any_workspace_crate && !a.nothing_depends_on_it);
    assert!(rows["d"].may.is_none() && rows["d"].nothing_depends_on_it);
}
