//! Keys and ranges: put, get, range (limit, more, count, revision, keys or count only), delete.

use etcd::{prefix_end, Client, ClientOptions, Error, Range};

use crate::{put_all, Fixture};

#[test]
fn put_get_range_delete() {
    let fixture = Fixture::start(1);
    let client = fixture.client();

    let revisions = put_all(&client, &[("kv/a", "1"), ("kv/b", "2"), ("kv/c", "3")]);
    let (first, third) = (revisions[0], revisions[2]);
    assert!(third > first);

    let a = client.get(b"kv/a").expect("get a").expect("a exists");
    assert_eq!((a.key.as_slice(), a.value.as_slice()), (&b"kv/a"[..], &b"1"[..]));
    assert_eq!((a.create_revision, a.mod_revision, a.version, a.lease_id), (first, first, 1, 0));
    assert_eq!(client.get(b"kv/missing").expect("get missing"), None);

    let limited = client.range_prefix(b"kv/", 2).expect("range");
    let keys: Vec<&[u8]> = limited.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [&b"kv/a"[..], b"kv/b"]);
    assert!(limited.more);
    assert_eq!(limited.count, 3);
    assert_eq!(limited.header.revision, third);

    let between = client.range(b"kv/a", b"kv/c", 0).expect("range a..c");
    assert_eq!(between.kvs.len(), 2);
    assert!(!between.more);

    // The store as of an older revision, keys only, count only.
    let updated = client.put(b"kv/a", b"1 again", 0).expect("put a again");
    let old = client.range_with(Range::key("kv/a").revision(first)).expect("old a");
    assert_eq!(old.kvs[0].value, b"1");
    let new = client.get(b"kv/a").expect("get a").expect("a exists");
    assert_eq!(
        (new.value.as_slice(), new.version, new.mod_revision),
        (&b"1 again"[..], 2, updated.revision)
    );
    let keys_only = client.range_with(Range::prefix("kv/").keys_only()).expect("keys only");
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()) && keys_only.kvs.len() == 3);
    let count_only = client.range_with(Range::prefix("kv/").count_only()).expect("count only");
    assert_eq!((count_only.kvs.len(), count_only.count), (0, 3));
    let serializable =
        client.range_with(Range::prefix("kv/").serializable()).expect("serializable");
    assert_eq!(serializable.count, 3);

    let (deleted, header) = client.delete_range(b"kv/", &prefix_end(b"kv/")).expect("delete");
    assert_eq!(deleted, 3);
    assert!(header.revision > updated.revision);
    assert_eq!(client.range_prefix(b"kv/", 0).expect("range").count, 0);
    let (deleted, _) = client.delete_range(b"kv/a", b"").expect("delete again");
    assert_eq!(deleted, 0);
}

#[test]
fn status_and_member_list_describe_the_cluster() {
    let fixture = Fixture::start(1);
    let client = fixture.client();
    let status = client.status(&fixture.cluster.endpoint(0)).expect("status");
    assert_eq!(status.member_id, fixture.cluster.member_id(0));
    assert_eq!(status.leader_id, status.member_id);
    assert!(status.version.starts_with("3.4"), "{}", status.version);
    assert!(status.db_size_bytes > 0 && status.raft_index > 0 && status.raft_term > 0);
    let members = client.member_list().expect("member list");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, status.member_id);
    assert_eq!(members[0].client_urls, [fixture.cluster.endpoint(0)]);
}

#[test]
fn a_response_larger_than_the_client_decodes_is_an_error() {
    let fixture = Fixture::start(1);
    let options = ClientOptions { response_bytes_max: 1_000, ..ClientOptions::new(500, 2_000) };
    let client = Client::connect_with(&fixture.cluster.endpoints(), options).expect("connect");
    client.put(b"large", &[1; 2_000], 0).expect("put");
    let read = client.get(b"large");
    assert!(matches!(read, Err(Error::ResponseTooLarge { .. })), "{read:?}");
    assert!(client.get(b"small").expect("a small answer").is_none());
}
