//! STYLE.md's mechanical rules: the I/O-free cores (the engine, the settlement core) read no
//! clock, randomness, files, sockets, threads or locks; no queue is unbounded; decoders never
//! `.unwrap()`; every file says what it is in a `//!` line at the top. Rules look at code only (comments and literals blanked) and, except
//! for `//!` and `unbounded(`, at non-test code only.

use std::collections::BTreeSet;

use crate::source::{
    code_only, members, non_test_files, read, relative, rust_files, token_lines, workspace_root,
};

/// Offenders of today, as (rule, file relative to the root), each with why it is tolerated.
/// The test fails on a new offender and on an entry that no longer offends, so the list only
/// shrinks.
const OFFENDERS_ALLOWED: &[(&str, &str)] = &[];

/// What an I/O-free core must not name: the clock, randomness, files, sockets, threads and locks.
const CORE_FORBIDDEN: &[&str] =
    &["Instant::now", "SystemTime", "rand", "std::fs", "std::net", "std::thread", "std::sync"];

/// An I/O-free core: its rule, its crate's directory, and which of the crate's files are core.
type Core = (&'static str, &'static str, fn(&str) -> bool);

/// The I/O-free cores: the engine, and the settlement core (`settlement/src/core.rs` and the
/// files below `core/`; its driver owns the I/O), as (rule, crate directory, files kept).
const CORES: &[Core] = &[
    ("engine-no-clock-rand-io", "engine", |_| true),
    ("settlement-core-no-clock-rand-io", "settlement", |file| {
        file == "settlement/src/core.rs" || file.starts_with("settlement/src/core/")
    }),
];

/// A rule's name and where it was broken: (rule, file, 1-based line).
type Offence = (&'static str, String, usize);

fn core_offences() -> Vec<Offence> {
    let mut offences = Vec::new();
    for (rule, dir, keep) in CORES {
        for file in non_test_files(&workspace_root().join(dir)) {
            let name = relative(&file.file);
            if !keep(&name) {
                continue;
            }
            for needle in CORE_FORBIDDEN {
                for line in token_lines(&file.code, needle) {
                    offences.push((*rule, name.clone(), line));
                }
            }
        }
    }
    offences
}

fn unbounded_offences() -> Vec<Offence> {
    let mut offences = Vec::new();
    for member in members() {
        for path in rust_files(&member.dir.join("src")) {
            for line in token_lines(&code_only(&read(&path)), "unbounded(") {
                offences.push(("no-unbounded-channel", relative(&path), line));
            }
        }
    }
    offences
}

fn decoder_unwrap_offences() -> Vec<Offence> {
    let mut offences = Vec::new();
    for member in members() {
        for file in non_test_files(&member.dir) {
            let name = file.file.file_name().map(|name| name.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            if !(name.starts_with("decode") || name == "codec.rs") {
                continue;
            }
            for line in token_lines(&file.code, ".unwrap()") {
                offences.push(("no-unwrap-in-decoders", relative(&file.file), line));
            }
        }
    }
    offences
}

fn module_doc_offences() -> Vec<Offence> {
    let mut offences = Vec::new();
    for path in rust_files(&workspace_root()) {
        if !read(&path).starts_with("//!") {
            offences.push(("file-starts-with-module-doc", relative(&path), 1));
        }
    }
    offences
}

#[test]
fn style_rules() {
    let offences: Vec<Offence> =
        [core_offences(), unbounded_offences(), decoder_unwrap_offences(), module_doc_offences()]
            .concat();
    let allowed: BTreeSet<(&str, &str)> = OFFENDERS_ALLOWED.iter().copied().collect();
    let mut broken = Vec::new();
    let mut offending: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (rule, file, line) in &offences {
        let is_allowed = allowed.contains(&(*rule, file.as_str()));
        println!("{rule}: {file}:{line}{}", if is_allowed { " (allowed)" } else { "" });
        if !is_allowed {
            broken.push(format!("{rule}: {file}:{line}"));
        }
        offending.insert((rule, file.as_str()));
    }
    for (rule, file) in allowed.difference(&offending) {
        broken.push(format!("{rule}: {file} is clean now; delete it from OFFENDERS_ALLOWED"));
    }
    assert!(broken.is_empty(), "style rules broken:\n{}", broken.join("\n"));
}
