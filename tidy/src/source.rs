//! What the checks read: the workspace (from `cargo metadata`), its Rust files, and each file's
//! code with comments and literals blanked out and `#[cfg(test)]` items removed, so a rule
//! never fires on a doc comment, a string or a test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace root: this crate's parent directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().expect("tidy/ sits in the workspace root").to_path_buf()
}

/// `cargo metadata --format-version 1` of the workspace, with `extra` arguments, run with the
/// `cargo` that runs the tests (`$CARGO`).
pub fn cargo_metadata(extra: &[&str]) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1"])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|error| panic!("run {cargo} metadata: {error}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// One workspace crate.
pub struct Member {
    pub name: String,
    pub dir: PathBuf,
}

/// The workspace's crates, sorted by name.
pub fn members() -> Vec<Member> {
    let metadata = cargo_metadata(&["--no-deps"]);
    let packages = metadata["packages"].as_array().expect("metadata has packages");
    let mut members: Vec<Member> = packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("a package has a name").to_string();
            let manifest = package["manifest_path"].as_str().expect("a package has a manifest");
            let dir = Path::new(manifest).parent().expect("a manifest is in a dir").to_path_buf();
            Member { name, dir }
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

/// Every `.rs` file below `dir`, sorted, skipping build output and hidden directories.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `path` relative to the workspace root, with `/` separators, for messages and allow-lists.
pub fn relative(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `text` with every comment and the inside of every string and char literal replaced by
/// spaces (newlines kept, so line numbers stay right).
pub fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut blank = |from: usize, to: usize| {
        for byte in &mut out[from..to.min(bytes.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let after_ident = at > 0 && is_ident(bytes[at - 1]);
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| at + n);
            blank(at, end);
            at = end;
        } else if rest.starts_with(b"/*") {
            let end = block_comment_end(bytes, at);
            blank(at, end);
            at = end;
        } else if let Some((body, end, next)) = raw_string(bytes, at).filter(|_| !after_ident) {
            blank(body, end);
            at = next;
        } else if rest[0] == b'"' {
            let mut end = at + 1;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            blank(at + 1, end);
            at = end + 1;
        } else if let Some(close) = char_literal_close(text, at) {
            blank(at + 1, close);
            at = close + 1;
        } else {
            at += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 (only whole literals become spaces)")
}

/// The end of the (possibly nested) block comment that opens at `at`.
fn block_comment_end(bytes: &[u8], at: usize) -> usize {
    let (mut depth, mut end) = (0usize, at);
    while end < bytes.len() {
        if bytes[end..].starts_with(b"/*") {
            depth += 1;
            end += 2;
        } else if bytes[end..].starts_with(b"*/") {
            depth -= 1;
            end += 2;
            if depth == 0 {
                break;
            }
        } else {
            end += 1;
        }
    }
    end
}

/// A raw string (`r"…"`, `r#"…"#`, `br"…"`) opening at `at`: where its body starts and ends,
/// and the index after its closing quote and hashes. `None` for anything else (`r#ident`).
fn raw_string(bytes: &[u8], at: usize) -> Option<(usize, usize, usize)> {
    let start = at
        + match &bytes[at..] {
            [b'r', ..] => 1,
            [b'b', b'r', ..] => 2,
            _ => return None,
        };
    let hashes = bytes[start..].iter().take_while(|&&b| b == b'#').count();
    if bytes.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let body = start + hashes + 1;
    let mut closing = vec![b'"'];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    let end = bytes[body..]
        .windows(closing.len())
        .position(|window| window == closing.as_slice())
        .map_or(bytes.len(), |n| body + n);
    Some((body, end, end + closing.len()))
}

/// The closing quote of a char literal opening at `at` ('x', '\n', '\'', '\u{1F600}'); `None`
/// for a lifetime ('a) or anything else.
fn char_literal_close(text: &str, at: usize) -> Option<usize> {
    let rest = &text.as_bytes()[at..];
    if rest.first() != Some(&b'\'') {
        return None;
    }
    let close = if rest.get(1) == Some(&b'\\') {
        // The escaped character itself may be a quote: look from after it.
        rest.iter().skip(3).position(|&b| b == b'\'').map(|n| n + 3)?
    } else {
        let width = text[at + 1..].chars().next().map_or(1, char::len_utf8);
        (rest.get(1 + width) == Some(&b'\'')).then_some(1 + width)?
    };
    (close <= 12).then_some(at + close)
}

/// The index just past the bracket that closes the one at `open` (`{`, `[` or `(`).
fn matching(code: &[u8], open: usize) -> usize {
    let (opener, closer) = match code[open] {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => (b'(', b')'),
    };
    let mut depth = 0usize;
    for (index, &byte) in code.iter().enumerate().skip(open) {
        if byte == opener {
            depth += 1;
        } else if byte == closer {
            depth -= 1;
            if depth == 0 {
                return index + 1;
            }
        }
    }
    code.len()
}

/// Code (from [`code_only`]) with every `#[cfg(test)]` item blanked out; also the names of
/// the `#[cfg(test)] mod NAME;` declarations, whose files are tests.
pub fn strip_cfg_test(code: &str) -> (String, Vec<String>) {
    let bytes = code.as_bytes();
    let mut out = bytes.to_vec();
    let mut test_mods = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find("#[cfg(test)]") {
        let start = search + found;
        let mut at = start + "#[cfg(test)]".len();
        // Skip whitespace and further attributes to the item itself.
        loop {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if bytes[at..].starts_with(b"#[") {
                at = matching(bytes, at + 1);
            } else {
                break;
            }
        }
        let item = at;
        let semicolon = code[item..].find(';').map(|n| item + n);
        let brace = code[item..].find('{').map(|n| item + n);
        let end = match (semicolon, brace) {
            (Some(semicolon), Some(brace)) if brace < semicolon => matching(bytes, brace),
            (Some(semicolon), _) => {
                let words: Vec<&str> = code[item..semicolon].split_whitespace().collect();
                if let [.., "mod", name] = words.as_slice() {
                    test_mods.push(name.to_string());
                }
                semicolon + 1
            }
            (None, Some(brace)) => matching(bytes, brace),
            (None, None) => bytes.len(),
        };
        for byte in &mut out[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        search = end;
    }
    (String::from_utf8(out).expect("blanking keeps UTF-8"), test_mods)
}

/// The `mod NAME;` declarations in (stripped) code: the module files it pulls in.
pub fn mod_declarations(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut names = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find("mod ") {
        let at = search + found;
        search = at + 4;
        if at > 0 && is_ident(bytes[at - 1]) {
            continue;
        }
        let rest = code[at + 4..].trim_start();
        let name: String = rest.chars().take_while(|&c| c.is_alphanumeric() || c == '_').collect();
        if !name.is_empty() && rest[name.len()..].trim_start().starts_with(';') {
            names.push(name);
        }
    }
    names
}

/// One non-test module file of a crate.
pub struct ModuleFile {
    /// Module path below the crate root (`[]` for the root itself).
    pub path: Vec<String>,
    pub file: PathBuf,
    /// The code, comments, literals and `#[cfg(test)]` items blanked.
    pub code: String,
}

/// The module files reachable from `root` (a crate root) through non-test `mod` declarations.
pub fn module_tree(root: &Path) -> Vec<ModuleFile> {
    let mut files = Vec::new();
    let mut queue = vec![(Vec::new(), root.to_path_buf())];
    let mut seen = BTreeSet::new();
    while let Some((path, file)) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let (code, _test_mods) = strip_cfg_test(&code_only(&read(&file)));
        let stem = file.file_stem().map(|stem| stem.to_string_lossy().into_owned());
        let parent = file.parent().expect("a file is in a dir").to_path_buf();
        // A crate root or a mod.rs holds its children beside it; `a.rs` holds them in `a/`.
        let dir = if path.is_empty() || stem.as_deref() == Some("mod") {
            parent
        } else {
            parent.join(stem.unwrap_or_default())
        };
        for name in mod_declarations(&code) {
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child = if flat.exists() { flat } else { nested };
            if child.exists() {
                let mut child_path = path.clone();
                child_path.push(name);
                queue.push((child_path, child));
            }
        }
        files.push(ModuleFile { path, file, code });
    }
    files.sort_by(|a, b| a.file.cmp(&b.file));
    files
}

/// The crate roots under `src/`: `lib.rs`, `main.rs` and each `bin/*.rs`.
pub fn crate_roots(crate_dir: &Path) -> Vec<PathBuf> {
    let src = crate_dir.join("src");
    let mut roots: Vec<PathBuf> =
        ["lib.rs", "main.rs"].iter().map(|name| src.join(name)).filter(|p| p.exists()).collect();
    if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
        let mut bins: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect();
        bins.sort();
        roots.extend(bins);
    }
    roots
}

/// Every non-test module file of a crate (library, binaries), each once.
pub fn non_test_files(crate_dir: &Path) -> Vec<ModuleFile> {
    let mut files: Vec<ModuleFile> =
        crate_roots(crate_dir).iter().flat_map(|root| module_tree(root)).collect();
    files.sort_by(|a, b| a.file.cmp(&b.file));
    files.dedup_by(|a, b| a.file == b.file);
    files
}

/// Where `needle` occurs in `code` as a whole token (no identifier character right before it
/// and, if it ends in one, right after): the 1-based line numbers.
pub fn token_lines(code: &str, needle: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut lines = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find(needle) {
        let at = search + found;
        search = at + needle.len();
        let starts_ident = needle.bytes().next().is_some_and(is_ident);
        let before_ok = !starts_ident || at == 0 || !is_ident(bytes[at - 1]);
        let ends_ident = needle.bytes().last().is_some_and(is_ident);
        let after_ok = !ends_ident || bytes.get(search).is_none_or(|&b| !is_ident(b));
        if before_ok && after_ok {
            lines.push(code[..at].matches('\n').count() + 1);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::{code_only, mod_declarations, strip_cfg_test, token_lines};

    #[test]
    fn blanks_comments_and_literals() {
        let code = code_only(
            "let a = \"x::y\"; // crate::b\nlet c = 'd'; /* e */ f::<'g>(r#\"h\"#, '\\'', br\"i\")",
        );
        assert_eq!(
            code,
            "let a = \"    \";            \nlet c = ' ';         f::<'g>(r#\" \"#, '  ', br\" \")"
        );
    }

    #[test]
    fn strips_test_items_and_finds_test_mods() {
        let (code, mods) = strip_cfg_test(
            "mod a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod b { x }\nfn c() {}",
        );
        assert_eq!(mods, ["tests"]);
        assert_eq!(mod_declarations(&code), ["a"]);
        assert!(code.ends_with("fn c() {}") && !code.contains('x'));
    }

    #[test]
    fn finds_whole_tokens() {
        assert_eq!(token_lines("rand::x\noperand\n rand", "rand"), [1, 3]);
        assert_eq!(token_lines("a.unwrap()\nunwrap_or()", ".unwrap()"), [1]);
    }
}
