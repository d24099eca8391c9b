//! The local cluster itself: member states, leader, a restarted member rejoins and catches up.

use etcd::local::MemberState;

use crate::{connect, retry_until, Fixture};

#[test]
fn a_restarted_member_rejoins_and_catches_up() {
    let mut fixture = Fixture::start(3);
    let cluster = &mut fixture.cluster;
    let ids: Vec<u64> = (0..3).map(|index| cluster.member_id(index)).collect();
    assert!(
        ids.iter().all(|&id| id != 0) && ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]
    );
    assert!(cluster.endpoints().iter().all(|endpoint| !endpoint.ends_with(":2379")));
    let leader = cluster.wait_for_leader(5_000).expect("a leader");
    assert_eq!(cluster.status(0).expect("status").leader_id, ids[leader]);

    cluster.kill(2).expect("kill");
    assert_eq!(cluster.state(2), MemberState::Killed);
    let client = connect(&[cluster.endpoint(0), cluster.endpoint(1)]);
    // Member 2 may have been the leader: until the others elect a new one, a write can time out.
    let (written, _) = retry_until(10_000, || client.put(b"while-down", b"v", 0));
    cluster.restart(2).expect("restart");
    assert_eq!(cluster.state(2), MemberState::Running);
    let alone = connect(&[cluster.endpoint(2)]);
    let read = alone.get(b"while-down").expect("get").expect("exists");
    assert_eq!(read.mod_revision, written.revision);
    assert_eq!(alone.member_list().expect("members").len(), 3);

    // Stopping a follower (the leader may have changed with the kill) leaves a leader.
    let stopped = (cluster.wait_for_leader(5_000).expect("a leader") + 1) % 3;
    cluster.stop(stopped).expect("stop");
    assert_eq!(cluster.state(stopped), MemberState::Stopped);
    assert!(cluster.leader_index().is_some(), "two of three still have a leader");
    cluster.cont(stopped).expect("cont");
    assert_eq!(cluster.state(stopped), MemberState::Running);
    assert!(cluster.log_path(0).exists() && cluster.data_dir(0).exists());
}
