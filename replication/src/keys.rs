//! Where one ledger's replication records live in etcd (REPLICATION.md, *Keys*). Every key of
//! a ledger starts with `/ledger/{name}/`, so ledgers (and later shards) share a cluster.

use thiserror::Error;

/// The longest ledger name or node id.
pub const NAME_LEN_BYTES_MAX: usize = 64;

/// A ledger name or node id that cannot be used in keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} {name:?}: use 1 to 64 characters of a-z, 0-9, '-' and '_'")]
pub struct NameError {
    /// "ledger name" or "node id".
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

/// Checks a ledger name or node id (`what` names which, for the error).
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let ok = (1..=NAME_LEN_BYTES_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError { what, name: name.to_owned() })
    }
}

/// The keys of one ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of ledger `name` (checked with [`check_name`]).
    pub fn new(name: &str) -> Result<Keys, NameError> {
        check_name("ledger name", name)?;
        Ok(Keys { prefix: format!("/ledger/{name}/") })
    }

    /// Every key of the ledger starts with this.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The log head (48 bytes, [`crate::Head`]).
    pub fn head(&self) -> Vec<u8> {
        format!("{}head", self.prefix).into_bytes()
    }

    /// The highest epoch ever claimed (8 bytes, little-endian).
    pub fn epoch(&self) -> Vec<u8> {
        format!("{}epoch", self.prefix).into_bytes()
    }

    /// The ledger's engine settings (REPLICATION.md, *Genesis*): written once, with the
    /// log's first entry, so that every replica starts from the same empty state.
    pub fn genesis(&self) -> Vec<u8> {
        format!("{}genesis", self.prefix).into_bytes()
    }

    /// The index of the newest log entry that carries a `state_hash` checkpoint (8 bytes,
    /// little-endian): written by every append of such an entry, in the same transaction;
    /// where a state transfer's receiver starts (REPLICATION.md, *State transfer*).
    pub fn checkpoint(&self) -> Vec<u8> {
        format!("{}checkpoint", self.prefix).into_bytes()
    }

    /// The primary's record, attached to its lease.
    pub fn leader(&self) -> Vec<u8> {
        format!("{}leader", self.prefix).into_bytes()
    }

    /// Entry `index` of the log: zero-padded to 20 digits so that key order is index order.
    pub fn entry(&self, index: u64) -> Vec<u8> {
        format!("{}log/{index:020}", self.prefix).into_bytes()
    }

    /// The range of every log entry: `[start, end)`.
    pub fn entries(&self) -> (Vec<u8>, Vec<u8>) {
        (format!("{}log/", self.prefix).into_bytes(), format!("{}log0", self.prefix).into_bytes())
    }

    /// The entry index a log key names, if it is one.
    pub fn index_of(&self, key: &[u8]) -> Option<u64> {
        let rest = key.strip_prefix(self.entries().0.as_slice())?;
        if rest.len() != 20 || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    /// Replica `node`'s progress record (attached to its lease).
    pub fn replica(&self, node: &str) -> Vec<u8> {
        format!("{}replica/{node}", self.prefix).into_bytes()
    }

    /// Replica `node`'s trimming floor (no lease: it outlives the node's restarts): the log
    /// index the node follows from, `u64` little-endian.
    pub fn floor(&self, node: &str) -> Vec<u8> {
        format!("{}floor/{node}", self.prefix).into_bytes()
    }

    /// The range of every trimming floor: `[start, end)`.
    pub fn floors(&self) -> (Vec<u8>, Vec<u8>) {
        (
            format!("{}floor/", self.prefix).into_bytes(),
            format!("{}floor0", self.prefix).into_bytes(),
        )
    }

    /// Replica `node`'s transfer hold (no lease): the log index it follows from once a state
    /// transfer is installed, `u64` little-endian; kept by the trim past `log_entries_max`
    /// (REPLICATION.md, *Trimming*) until the node has caught up with the log.
    pub fn hold(&self, node: &str) -> Vec<u8> {
        format!("{}hold/{node}", self.prefix).into_bytes()
    }

    /// The range of every transfer hold: `[start, end)`.
    pub fn holds(&self) -> (Vec<u8>, Vec<u8>) {
        (format!("{}hold/", self.prefix).into_bytes(), format!("{}hold0", self.prefix).into_bytes())
    }

    /// The range of every replica record: `[start, end)`.
    pub fn replicas(&self) -> (Vec<u8>, Vec<u8>) {
        (
            format!("{}replica/", self.prefix).into_bytes(),
            format!("{}replica0", self.prefix).into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_by_index_and_parse_back() {
        let keys = Keys::new("main").expect("name");
        assert!(keys.entry(9) < keys.entry(10));
        assert_eq!(keys.index_of(&keys.entry(123_456)), Some(123_456));
        assert_eq!(keys.index_of(&keys.head()), None);
        let (start, end) = keys.entries();
        assert!(start < keys.entry(0) && keys.entry(u64::MAX) < end);
    }

    #[test]
    fn names_are_checked() {
        assert!(Keys::new("ledger-1_a").is_ok());
        for bad in ["", "A", "a/b", "a b", &"x".repeat(65)] {
            assert!(Keys::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
