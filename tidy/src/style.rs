//! STYLE.md's mechanical rules: the engine reads no clock, randomness, files, sockets or
//! threads; no queue is unbounded; decoders never `.unwrap()`; every file says what it is in a
//! `//!` line at the top. Rules look at code only (comments and literals blanked) and, except
//! for `//!` and `unbounded(`, at non-test code only.

use std::collections::BTreeSet;

use crate::source::{
    code_only, members, non_test_files, read, relative, rust_files, token_lines, workspace_root,
};

/// Offenders of today, as (rule, file relative to the root), each with why it is tolerated.
/// The test fails on a new offender and on an entry that no longer offends, so the list only
/// shrinks.
const OFFENDERS_ALLOWED: &[(&str, &str)] = &[];

/// What the engine must not name: the clock, randomness, files, sockets and threads.
const ENGINE_FORBIDDEN: &[&str] =
    &["Instant::now", "SystemTime", "rand", "std::fs", "std::net", "std::thread"];

/// A rule's name and where it was broken: (rule, file, 1-based line).
type Offence = (&'static str, String, usize);

fn engine_offences() -> Vec<Offence> {
    let engine = workspace_root().join("engine");
    let mut offences = Vec::new();
    for file in non_test_files(&engine) {
        for needle in ENGINE_FORBIDDEN {
            for line in token_lines(&file.code, needle) {
                offences.push(("engine-no-clock-rand-io", relative(&file.file), line));
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
        [engine_offences(), unbounded_offences(), decoder_unwrap_offences(), module_doc_offences()]
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
