//! The modules of the engine form no cycle: a module names another (`crate::name` in a `use`
//! or a path) only if that one never names it back, directly or through others. Test code is
//! left out (it may reach anywhere).

use std::collections::BTreeMap;

/// Per module: the modules its non-test code names.
fn edges() -> BTreeMap<String, Vec<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let modules: Vec<String> = lib
        .lines()
        .filter_map(|line| {
            line.trim().strip_prefix("mod ").or(line.trim().strip_prefix("pub mod "))
        })
        .map(|name| name.trim_end_matches(';').to_string())
        .filter(|name| name != "tests")
        .collect();
    let mut edges = BTreeMap::new();
    for module in &modules {
        let text = std::fs::read_to_string(src.join(format!("{module}.rs"))).expect("module file");
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        assert!(!code.contains("super::"), "{module}: names its parent");
        let mut named: Vec<String> = modules
            .iter()
            .filter(|other| *other != module && code.contains(&format!("crate::{other}::")))
            .cloned()
            .collect();
        for (other, nested) in
            modules.iter().flat_map(|o| [(o, format!("crate::{{{o}")), (o, format!(", {o}::"))])
        {
            if other != module && code.contains(&nested) && !named.contains(other) {
                named.push(other.clone());
            }
        }
        edges.insert(module.clone(), named);
    }
    edges
}

#[test]
fn modules_form_no_cycle() {
    let edges = edges();
    // Kahn's algorithm: repeatedly remove modules that name nothing left; a cycle remains.
    let mut left = edges.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, named)| named.iter().all(|other| !left.contains_key(other)))
            .map(|(module, _)| module.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    assert!(left.is_empty(), "modules in a cycle: {left:?}");
    assert!(edges["ops"].contains(&"ledger".to_string()), "the scan sees `use` edges");
}
