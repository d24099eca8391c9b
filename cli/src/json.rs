//! A small JSON writer for the CLI's `--json` output: one object per run, on one line, keys in
//! the order they are added (so the output is byte-for-byte deterministic). Amounts are
//! strings, never numbers: a JSON number is a float to most readers.

/// An object being written: `JsonObject::new().str("a", "b").finish()` is `{"a":"b"}`.
#[derive(Debug)]
pub struct JsonObject {
    out: String,
}

impl Default for JsonObject {
    fn default() -> JsonObject {
        JsonObject::new()
    }
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> JsonObject {
        JsonObject { out: String::from("{") }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_string(&mut self.out, key);
        self.out.push(':');
    }

    /// Adds a string.
    pub fn str(mut self, key: &str, value: &str) -> JsonObject {
        self.key(key);
        push_string(&mut self.out, value);
        self
    }

    /// Adds a string, or `null`.
    pub fn opt_str(mut self, key: &str, value: Option<&str>) -> JsonObject {
        self.key(key);
        match value {
            Some(value) => push_string(&mut self.out, value),
            None => self.out.push_str("null"),
        }
        self
    }

    /// Adds `true` or `false`.
    pub fn bool(mut self, key: &str, value: bool) -> JsonObject {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds an integer.
    pub fn num(mut self, key: &str, value: u64) -> JsonObject {
        self.key(key);
        self.out.push_str(&value.to_string());
        self
    }

    /// Adds an integer, or `null`.
    pub fn opt_num(mut self, key: &str, value: Option<u64>) -> JsonObject {
        self.key(key);
        match value {
            Some(value) => self.out.push_str(&value.to_string()),
            None => self.out.push_str("null"),
        }
        self
    }

    /// Adds an array of strings.
    pub fn strs<'a>(mut self, key: &str, values: impl IntoIterator<Item = &'a str>) -> JsonObject {
        self.key(key);
        self.out.push('[');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            push_string(&mut self.out, value);
        }
        self.out.push(']');
        self
    }

    /// Adds an array of objects.
    pub fn objects(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = JsonObject>,
    ) -> JsonObject {
        self.key(key);
        self.out.push('[');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.out.push_str(&value.finish());
        }
        self.out.push(']');
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `value` as a JSON string: quoted, with `"`, `\` and control characters escaped.
pub fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
