//! Which keys a read covers: [`Range`] (a key, a prefix or `[key, range_end)`, with a limit,
//! a revision and what to return) and [`prefix_end`], the end of a prefix's range.

use crate::pb::etcdserverpb as rpc;

/// A read of one key or a range of keys; used by `Client::range_with` and inside transactions
/// (`Op::range`).
#[derive(Clone, Debug, PartialEq)]
pub struct Range(pub(crate) rpc::RangeRequest);

impl Range {
    /// Just `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Range {
        Range(rpc::RangeRequest { key: key.into(), ..Default::default() })
    }

    /// Every key in `[key, range_end)`; `range_end` empty means just `key`, `b"\0"` every key
    /// from `key` on (etcd's conventions).
    pub fn between(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Range {
        Range(rpc::RangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            ..Default::default()
        })
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Range {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Range::between(key, range_end)
    }

    /// At most `limit` keys (the first in key order); 0 means no limit.
    pub fn limit(mut self, limit: i64) -> Range {
        self.0.limit = limit;
        self
    }

    /// Read the store as of `revision` (0: the newest). A compacted revision is refused with
    /// `Error::Compacted`.
    pub fn revision(mut self, revision: i64) -> Range {
        self.0.revision = revision;
        self
    }

    /// Return keys and revisions, without values.
    pub fn keys_only(mut self) -> Range {
        self.0.keys_only = true;
        self
    }

    /// Return only the count.
    pub fn count_only(mut self) -> Range {
        self.0.count_only = true;
        self
    }

    /// Let the member answer alone, without confirming with the leader that it is up to date
    /// (faster, and possible without a quorum, but possibly stale).
    pub fn serializable(mut self) -> Range {
        self.0.serializable = true;
        self
    }
}

/// The end of the range of keys starting with `prefix`: the prefix with its last byte below
/// 0xff incremented and what follows dropped; `b"\0"` (every key) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&byte| byte < 0xff) {
        Some(last) => {
            let mut end = prefix[..=last].to_vec();
            end[last] += 1;
            end
        }
        None => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        let check =
            |prefix: &[u8], expect: &[u8]| assert_eq!(prefix_end(prefix), expect, "{prefix:?}");
        check(b"a", b"b");
        check(b"log/", b"log0");
        check(b"a\xff", b"b");
        check(b"a\xfe\xff\xff", b"a\xff");
        check(b"\xff\xff", b"\0");
        check(b"", b"\0");
    }
}
