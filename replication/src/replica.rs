//! The replica thread: catches this node up with the log, follows it as a standby, claims the
//! leadership when there is no primary, and promotes the node (REPLICATION.md, *Electing a
//! primary* and *Following*). A lease thread beside it keeps the node's etcd lease alive.
//!
//! **Invariant:** while this node is a standby, the replica thread is the only writer to the
//! runtime (`Handle::replicate`): the server refuses every client request with `not_primary`.
//! **Invariant:** a standby never skips an entry and never goes on past a refusal: a bad entry,
//! a broken chain or a different `state_hash` stops the node (its role says why).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use runtime::{Handle, Query, QueryAnswer};

use crate::chain::Chain;
use crate::entry::{encode_epoch_start, Entry, EntryKind, EntryMeta, Head};
use crate::metrics::ReplicationMetrics;
use crate::role::{Role, RoleState};
use crate::stage::{Control, Primary};
use crate::store::{Appended, Change, Claim, Genesis, ReplicaRecord, Store, StoreError};

/// Entries read per range request while catching up.
const PAGE_ENTRIES: i64 = 64;
/// How long one wait on the watch lasts before the thread looks at its stop flag and lease.
const WATCH_POLL_MS: u64 = 100;
/// How often a replica refreshes its replica record.
const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// TTLs without a successful renewal after which a node takes its lease as lost.
const LEASE_SILENCE_TTLS: u32 = 3;
/// How often a primary trims the log and compacts etcd's history (REPLICATION.md, *Trimming*).
const TRIM_INTERVAL: Duration = Duration::from_secs(2);
/// Entries kept below the lowest floor: a replica whose journal lost records its position
/// vouched for (a lost tail, a lost page) rewinds into them instead of needing a re-seed.
const TRIM_MARGIN_ENTRIES: u64 = 256;
/// Pause after a failed etcd request before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// [`ClusterOptions::log_entries_max`] by default: with entries of at most 1 MiB, the log
/// holds at most 1 GiB in etcd (half its default quota).
pub const LOG_ENTRIES_MAX_DEFAULT: u64 = 1_024;

/// How this node takes part in its replica group.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// etcd client endpoints (`host:port`).
    pub endpoints: Vec<String>,
    /// The ledger (the replica group): its keys live under `/ledger/NAME/`.
    pub ledger: String,
    /// This node's id, unique in the group.
    pub node: String,
    /// The client address other nodes send clients to when this node is the primary.
    pub advertise: String,
    /// The node's etcd lease: a primary that cannot renew it for this long is replaced.
    pub lease_ttl_s: i64,
    /// A `state_hash` checkpoint in every this many entries.
    pub checkpoint_every_entries: u64,
    /// The deadline of one etcd request.
    pub request_timeout_ms: u64,
    /// The most entries the log keeps behind its head: a replica further behind (down for
    /// long) is passed by the trim and must be re-seeded (REPLICATION.md, *Trimming*).
    pub log_entries_max: u64,
    /// Whether this node, as the primary, stores entry bodies compressed (version 2,
    /// REPLICATION.md, *Entry*). Off: version 1, which replicas built before version 2 read.
    pub compress_entries: bool,
}

impl ClusterOptions {
    /// Defaults for everything but where and who.
    pub fn new(
        endpoints: Vec<String>,
        ledger: &str,
        node: &str,
        advertise: &str,
    ) -> ClusterOptions {
        ClusterOptions {
            endpoints,
            ledger: ledger.to_owned(),
            node: node.to_owned(),
            advertise: advertise.to_owned(),
            lease_ttl_s: 2,
            checkpoint_every_entries: 256,
            request_timeout_ms: 2_000,
            log_entries_max: LOG_ENTRIES_MAX_DEFAULT,
            compress_entries: true,
        }
    }
}

/// The running replica and lease threads of this node.
pub struct Replica {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    role: Arc<Role>,
}

/// What the replica thread works with, prepared before the runtime starts.
pub(crate) struct Wiring {
    pub options: ClusterOptions,
    /// The ledger's data directory (the position file lives there).
    pub data_dir: std::path::PathBuf,
    pub store: Arc<Store>,
    pub role: Arc<Role>,
    pub metrics: Arc<ReplicationMetrics>,
    pub control: Sender<Control>,
    /// Whether this node catches up by a state transfer when the trim passes it (it then
    /// restarts to make one) rather than stopping for good.
    pub transfers: bool,
}

impl Replica {
    pub(crate) fn spawn(
        wiring: Wiring,
        handle: Handle,
        genesis: Genesis,
        position: Option<Head>,
    ) -> Result<Replica, String> {
        let Wiring { options, store, role, .. } = &wiring;
        let (options, store, role) = (options.clone(), store.clone(), role.clone());
        let lease_id = store
            .grant_lease(options.lease_ttl_s)
            .map_err(|error| format!("grant this node's etcd lease: {}", error.message()))?;
        let lease_id = Arc::new(AtomicI64::new(lease_id));
        let stop = Arc::new(AtomicBool::new(false));
        let lease = {
            let (store, role, stop) = (store.clone(), role.clone(), stop.clone());
            let lease_id = lease_id.clone();
            let ttl_s = options.lease_ttl_s.max(1);
            std::thread::Builder::new()
                .name("ledger-lease".into())
                .spawn(move || keep_lease(&store, &role, &lease_id, ttl_s, &stop))
                .map_err(|error| format!("spawn the lease thread: {error}"))?
        };
        if let Some(position) = position {
            // Where this node stands before it applies anything (an idle log moves nothing).
            role.set_log_head(position);
        }
        let follower = {
            let stop = stop.clone();
            let mut follow = Follow {
                wiring,
                handle,
                lease_id,
                genesis,
                chain: position.map_or_else(Chain::genesis, Chain::after),
                written_position: position,
                written_floor: None,
                last_trim: None,
                compact_at: None,
                trimmed_below: 0,
                behind_since: None,
                leader_present: true,
                last_report: None,
            };
            std::thread::Builder::new()
                .name("ledger-replica".into())
                .spawn(move || {
                    let result = follow.verify_position().and_then(|()| follow.run(&stop));
                    if let Err(why) = result {
                        eprintln!("ledgerd: replication stopped: {why}");
                        follow.wiring.role.stop(why);
                    }
                    follow.write_position();
                    let _ =
                        follow.wiring.store.revoke_lease(follow.lease_id.load(Ordering::Acquire));
                })
                .map_err(|error| format!("spawn the replica thread: {error}"))?
        };
        Ok(Replica { stop, threads: vec![lease, follower], role })
    }

    /// The node's role.
    pub fn role(&self) -> &Arc<Role> {
        &self.role
    }

    /// Stops both threads (the lease is revoked, so another node can take over at once).
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Renews the lease every third of its TTL. "Not found" (it expired) stops the role at once.
/// Requests that time out are retried: etcd extends every lease when it elects a new leader,
/// so an etcd failover that stalls renewals for a while costs nothing. Only after
/// `LEASE_SILENCE_TTLS` TTLs without a renewal is the lease taken as lost. Safety never rests
/// on this timer: a primary whose lease is gone has its appends refused by etcd (the leader
/// key it compares on is gone); the timer only makes it step down promptly.
fn keep_lease(store: &Store, role: &Role, lease: &AtomicI64, ttl_s: i64, stop: &AtomicBool) {
    let ttl = Duration::from_secs(ttl_s as u64);
    let mut renewed = Instant::now();
    // Bounded by `stop` and by the role stopping.
    while !stop.load(Ordering::Acquire) && role.state() != RoleState::Stopped {
        std::thread::sleep(ttl / 6);
        if renewed.elapsed() < ttl / 3 {
            continue;
        }
        let lease_id = lease.load(Ordering::Acquire);
        let lost = match store.keep_alive(lease_id) {
            Ok(true) => {
                renewed = Instant::now();
                None
            }
            Ok(false) => Some(format!("this node's etcd lease {lease_id:x} expired")),
            Err(_) if renewed.elapsed() >= ttl * LEASE_SILENCE_TTLS => Some(format!(
                "this node's etcd lease {lease_id:x} was not renewed for {} ms",
                renewed.elapsed().as_millis()
            )),
            Err(_) => None,
        };
        let Some(why) = lost else { continue };
        if role.state() == RoleState::Primary {
            role.depose(why);
            return;
        }
        // A standby's lease only carries its replica record (and a claim it may make): it
        // takes a new one and goes on. etcd expires leases after a quorum outage longer than
        // their TTL when the same etcd leader carries on.
        match store.grant_lease(ttl_s) {
            Ok(new_id) => {
                lease.store(new_id, Ordering::Release);
                renewed = Instant::now();
                eprintln!("ledgerd: {why}; this standby took lease {new_id:x}");
            }
            Err(_) => std::thread::sleep(RETRY_PAUSE),
        }
    }
}

struct Follow {
    wiring: Wiring,
    handle: Handle,
    /// This node's current lease (a standby takes a new one when it expires).
    lease_id: Arc<AtomicI64>,
    /// This ledger's engine settings, written with the log's first entry.
    genesis: Genesis,
    chain: Chain,
    /// Whether a leader key was there the last time we looked.
    leader_present: bool,
    last_report: Option<Instant>,
    /// What the position file holds.
    written_position: Option<Head>,
    /// The trimming floor this node last wrote to etcd.
    written_floor: Option<u64>,
    /// As primary: when it last trimmed, and the revision it read then (compacted next time).
    last_trim: Option<Instant>,
    compact_at: Option<i64>,
    /// As primary: the entries below this index are deleted already.
    trimmed_below: u64,
    /// As standby: since when it has been behind the log head (`None`: caught up).
    behind_since: Option<Instant>,
}

impl Follow {
    fn run(&mut self, stop: &AtomicBool) -> Result<(), String> {
        // The floor first, so no trim passes what this node is about to read.
        self.write_floor();
        let mut revision = self.catch_up(stop)?;
        // Caught up: a transfer hold of this node's (REPLICATION.md, *Trimming*) is no longer
        // needed; its floor protects what it follows from now.
        if let Err(error) = self.wiring.store.delete_hold(&self.wiring.options.node) {
            eprintln!("ledgerd: could not remove this node's transfer hold: {}", error.message());
        }
        self.wiring.role.set_standby();
        // Bounded per pass: one watch wait; the loop ends on stop, promotion or failure.
        while !stop.load(Ordering::Acquire) {
            if self.wiring.role.state() == RoleState::Stopped {
                return Ok(());
            }
            if !self.leader_present {
                match self.try_claim(stop)? {
                    true => return self.serve(stop),
                    false => revision = self.catch_up(stop)?,
                }
            }
            let mut watch = match self.wiring.store.watch(revision + 1) {
                Ok(watch) => watch,
                Err(_) => {
                    std::thread::sleep(RETRY_PAUSE);
                    revision = self.catch_up(stop)?;
                    continue;
                }
            };
            // Follow the watch until it breaks or the leader goes.
            while !stop.load(Ordering::Acquire) && self.leader_present {
                self.report();
                match watch.next(WATCH_POLL_MS) {
                    Ok(None) => {}
                    Ok(Some(batch)) => {
                        for change in batch.changes {
                            self.on_change(change)?;
                        }
                        revision = revision.max(batch.revision);
                    }
                    Err(_) => break,
                }
                if self.wiring.role.state() == RoleState::Stopped {
                    return Ok(());
                }
            }
            // A broken watch or a missing leader: read what was missed from the log itself.
            revision = self.catch_up(stop)?;
        }
        Ok(())
    }

    fn on_change(&mut self, change: Change) -> Result<(), String> {
        match change {
            Change::Entry { index, value } => {
                if index < self.chain.next_index() {
                    return Ok(()); // applied already (a catch-up read overlapped the watch)
                }
                self.check_not_trimmed(index)?;
                self.apply(index, &value)
            }
            Change::Leader(leader) => {
                self.leader_present = true;
                self.wiring.role.set_epoch_seen(leader.epoch);
                self.wiring.role.set_primary_addr(Some(leader.addr));
                Ok(())
            }
            Change::LeaderGone => {
                self.leader_present = false;
                self.wiring.role.set_primary_addr(None);
                Ok(())
            }
        }
    }

    /// Reads and applies every entry after the chain's head; returns the etcd revision the
    /// reads saw (a watch from the next one misses nothing). Learns whether a leader exists.
    fn catch_up(&mut self, stop: &AtomicBool) -> Result<i64, String> {
        // Bounded: each pass applies a page of entries or waits for etcd; `stop` ends it.
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(0);
            }
            let page = match self.wiring.store.entries(self.chain.next_index(), PAGE_ENTRIES) {
                Ok(page) => page,
                Err(_) => {
                    std::thread::sleep(RETRY_PAUSE);
                    continue;
                }
            };
            if let Some((index, _)) = page.entries.first() {
                self.check_not_trimmed(*index)?;
            }
            for (index, value) in &page.entries {
                self.apply(*index, value)?;
            }
            if page.more {
                continue;
            }
            let leader = match self.wiring.store.leader() {
                Ok(leader) => leader,
                Err(_) => {
                    std::thread::sleep(RETRY_PAUSE);
                    continue;
                }
            };
            self.leader_present = leader.is_some();
            self.wiring.role.set_primary_addr(leader.as_ref().map(|leader| leader.addr.clone()));
            if let Some(leader) = &leader {
                self.wiring.role.set_epoch_seen(leader.epoch);
            }
            let local_seq = self.handle.durable_seq();
            let log_seq = self.chain.head().map_or(0, |head| head.last_seq);
            if self.chain.head().is_some() && local_seq > log_seq {
                let why = format!(
                    "the local journal holds seqs {}..={local_seq} that the log does not (it ends at seq {log_seq}): \
                     they were never acknowledged; a restart cuts them and rejoins as a standby",
                    log_seq + 1
                );
                self.wiring.role.depose(why.clone());
                return Err(why);
            }
            self.report();
            return Ok(page.revision);
        }
    }

    /// Refuses to go on when the next entry this node needs is gone: `index`, the first one
    /// seen, is after it (the log was trimmed past this node while it was away).
    fn check_not_trimmed(&self, index: u64) -> Result<(), String> {
        let needed = self.chain.next_index();
        if index <= needed {
            return Ok(());
        }
        let why = format!(
            "this node needs log entry {needed}, but the log's oldest entry is {index}: it was trimmed \
             past this node (more than --log-entries-max behind, or a new node that joined after a trim)"
        );
        if self.wiring.transfers {
            // A restart catches up by a state transfer from a peer.
            self.wiring
                .role
                .depose(format!("{why}; starting again to catch up by a state transfer"));
            return Err(why);
        }
        Err(format!(
            "{why}; no state transfer is configured: re-seed this node from a copy of a stopped standby's \
             data directory (README, Catching up by a state transfer, and re-seeding)"
        ))
    }

    /// Verifies entry `index` against the chain and applies what it holds beyond the local
    /// journal.
    fn apply(&mut self, index: u64, value: &[u8]) -> Result<(), String> {
        let entry = Entry::decode(value).map_err(|error| format!("log entry {index}: {error}"))?;
        if entry.index != index {
            return Err(format!("the entry under key {index} says it is entry {}", entry.index));
        }
        let local_seq = self.handle.durable_seq();
        // After `reconcile_local`, the local journal ends exactly where the chain does: every
        // entry after it is applied whole, and nothing local is taken on trust.
        if entry.first_seq != local_seq + 1 {
            return Err(format!(
                "log entry {index} starts at seq {}, but the local journal ends at seq {local_seq}",
                entry.first_seq
            ));
        }
        let checkpoint = self.chain.accept(&entry).map_err(|error| error.to_string())?;
        let head = entry.head();
        match entry.kind {
            EntryKind::EpochStart => {
                self.wiring.role.set_epoch_seen(entry.epoch);
                let expected = checkpoint.ok_or("an epoch start without its checkpoint")?;
                self.compare_state(&head, expected)?;
            }
            EntryKind::Records => {
                let (first_seq, record_count) = (entry.first_seq, entry.record_count);
                // A decompressed body moves into the runtime as it is (no copy).
                let records = entry.into_body();
                let replicated = self
                    .handle
                    .replicate(first_seq, records, record_count, checkpoint.is_some())
                    .map_err(|error| {
                        format!("journal entry {index} (seqs {first_seq}..): {error}")
                    })?;
                if replicated.last_seq != head.last_seq {
                    return Err(format!(
                        "entry {index} journaled up to seq {}, not {}",
                        replicated.last_seq, head.last_seq
                    ));
                }
                if let (Some(expected), Some(actual)) = (checkpoint, replicated.state_hash) {
                    if expected != actual {
                        return Err(divergence(&head, expected, actual));
                    }
                }
            }
        }
        self.wiring.metrics.record_applied();
        self.wiring.role.set_log_head(head);
        Ok(())
    }

    fn compare_state(&self, head: &Head, expected: u128) -> Result<(), String> {
        let actual = state_hash(&self.handle)?;
        if actual != expected {
            return Err(divergence(head, expected, actual));
        }
        Ok(())
    }

    /// Claims the leadership (REPLICATION.md, *Electing a primary*, steps 2–4). `Ok(true)`:
    /// this node is the primary now.
    fn try_claim(&mut self, stop: &AtomicBool) -> Result<bool, String> {
        let claim = match self.wiring.store.claim(
            &self.wiring.options.node,
            &self.wiring.options.advertise,
            self.lease_id.load(Ordering::Acquire),
        ) {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                self.leader_present = true;
                return Ok(false);
            }
            Err(_) => return Ok(false),
        };
        eprintln!(
            "ledgerd: {} claimed epoch {} of ledger {}",
            self.wiring.options.node, claim.epoch, self.wiring.options.ledger
        );
        self.wiring.role.set_epoch_seen(claim.epoch);
        // Step 3: everything up to the head (a linearizable read after the claim).
        self.catch_up(stop)?;
        let prev = self.chain.head();
        let local_seq = self.handle.durable_seq();
        let first_seq = local_seq + 1;
        let state_hash = state_hash(&self.handle)?;
        let meta = EntryMeta {
            index: prev.map_or(1, |head| head.index + 1),
            epoch: claim.epoch,
            first_seq,
            prev_hash: prev.map_or(0, |head| head.entry_hash),
            state_hash: Some(state_hash),
        };
        let mut entry = Vec::new();
        let head = encode_epoch_start(&mut entry, meta, &self.wiring.options.node);
        // Step 4: the epoch start, fenced on the head it read; the outcome is resolved like
        // any append's.
        let appended = self.append_epoch_start(&entry, prev.as_ref(), &head, &claim, stop)?;
        if !appended {
            let _ = self.wiring.store.resign(&claim);
            self.leader_present = true;
            return Ok(false);
        }
        let decoded = Entry::decode(&entry).map_err(|error| error.to_string())?;
        self.chain.accept(&decoded).map_err(|error| error.to_string())?;
        let primary = Primary { epoch: claim.epoch, claim_revision: claim.revision, head };
        self.wiring
            .control
            .send(Control::Promote(primary))
            .map_err(|_| "the replication stage is gone")?;
        self.wiring.role.set_log_head(head);
        self.wiring.role.set_primary(claim.epoch, &self.wiring.options.advertise);
        eprintln!(
            "ledgerd: {} is the primary of ledger {} (epoch {}, from seq {first_seq})",
            self.wiring.options.node, self.wiring.options.ledger, claim.epoch
        );
        Ok(true)
    }

    fn append_epoch_start(
        &self,
        entry: &[u8],
        prev: Option<&Head>,
        head: &Head,
        claim: &Claim,
        stop: &AtomicBool,
    ) -> Result<bool, String> {
        // Bounded by `stop`: an unknown outcome is resolved by reading the head.
        loop {
            if stop.load(Ordering::Acquire) || self.wiring.role.state() == RoleState::Stopped {
                return Ok(false);
            }
            let genesis = prev.is_none().then_some(self.genesis);
            match self.wiring.store.append(entry, prev, head, claim.revision, genesis) {
                Ok(Appended::Committed) => return Ok(true),
                Ok(Appended::Refused { head: Some(found) }) if found == *head => return Ok(true),
                Ok(Appended::Refused { .. }) => return Ok(false),
                Err(StoreError::Failed(error)) => {
                    return Err(format!("append the epoch start: {error}"))
                }
                Err(StoreError::Unknown(_)) => loop {
                    std::thread::sleep(RETRY_PAUSE);
                    match self.wiring.store.head() {
                        Ok(Some(found)) if found == *head => return Ok(true),
                        Ok(found) if found.as_ref() == prev => break,
                        Ok(_) => return Ok(false),
                        Err(_) if stop.load(Ordering::Acquire) => return Ok(false),
                        Err(_) => {}
                    }
                },
            }
        }
    }

    /// As the primary: renews the replica record until stopped or deposed.
    fn serve(&mut self, stop: &AtomicBool) -> Result<(), String> {
        // Bounded per pass by the sleep; ends on stop or when the role stops.
        while !stop.load(Ordering::Acquire) && self.wiring.role.state() == RoleState::Primary {
            self.report();
            if self.last_trim.is_none_or(|at| at.elapsed() >= TRIM_INTERVAL) {
                self.last_trim = Some(Instant::now());
                self.trim();
            }
            std::thread::sleep(Duration::from_millis(WATCH_POLL_MS));
        }
        Ok(())
    }

    /// As primary (REPLICATION.md, *Trimming*): deletes the entries below every node's floor
    /// (or below `log_entries_max` behind the head, whichever is higher; never the head), and
    /// compacts etcd's history up to the revision read at the previous trim. Failures only
    /// postpone it to the next interval.
    fn trim(&mut self) {
        let Some(head) = self.wiring.role.log_head() else { return };
        let (floors, revision) = match self.wiring.store.floors() {
            Ok(read) => read,
            Err(_) => return,
        };
        if self.trimmed_below == 0 {
            // A new primary: what earlier primaries trimmed is not this one's to count.
            match self.wiring.store.oldest_index() {
                Ok(oldest) => self.trimmed_below = oldest.unwrap_or(head.index).max(1),
                Err(_) => return,
            }
        }
        // The newest checkpoint entry stays: a state transfer starts there.
        let checkpoint = match self.wiring.store.checkpoint() {
            Ok(checkpoint) => checkpoint.unwrap_or(head.index),
            Err(_) => return,
        };
        // A node installing a state transfer holds what it follows from, up to another
        // `log_entries_max` entries.
        let holds = match self.wiring.store.holds() {
            Ok(holds) => holds,
            Err(_) => return,
        };
        let entries_max = self.wiring.options.log_entries_max;
        let hold = holds.iter().map(|(_, index)| *index).min().unwrap_or(head.index);
        let hold = hold.max(head.index.saturating_sub(2 * entries_max));
        let floor = floors.iter().map(|(_, index)| *index).min().unwrap_or(head.index);
        let bound = head.index.saturating_sub(entries_max);
        let below = floor
            .saturating_sub(TRIM_MARGIN_ENTRIES)
            .max(bound)
            .min(head.index)
            .min(checkpoint)
            .min(hold);
        if below > self.trimmed_below {
            if below > floor {
                let passed: Vec<String> = floors
                    .iter()
                    .filter(|(_, index)| *index < below)
                    .map(|(node, index)| format!("{node} (at entry {index})"))
                    .collect();
                eprintln!(
                    "ledgerd: trimming the log below entry {below} ({} entries behind the head, the most kept) \
                     passes {}: they must be re-seeded to rejoin",
                    self.wiring.options.log_entries_max,
                    passed.join(", ")
                );
            }
            if self.wiring.store.trim_below(below).is_err() {
                return;
            }
            self.wiring.metrics.record_trim(below, below - self.trimmed_below);
            self.trimmed_below = below;
        }
        if let Some(previous) = self.compact_at.replace(revision) {
            // A revision compacted already (by another primary) is no failure.
            let _ = self.wiring.store.compact(previous);
        }
    }

    /// Checks that the entry the position file names is in the log as recorded (unless it
    /// was trimmed away since): a position from another history stops the node.
    fn verify_position(&self) -> Result<(), String> {
        let Some(position) = self.chain.head() else {
            return Ok(());
        };
        // Bounded: retries until etcd answers; a stopped role ends it.
        loop {
            if self.wiring.role.state() == RoleState::Stopped {
                return Ok(());
            }
            match self.wiring.store.entries(position.index, 1) {
                Ok(page) => {
                    let Some((index, value)) = page.entries.first() else {
                        return Err(format!(
                            "this node's position names log entry {} but the log has no entry from there on",
                            position.index
                        ));
                    };
                    if *index != position.index {
                        return Ok(()); // trimmed: the position predates the log's oldest entry
                    }
                    let entry = Entry::decode(value)
                        .map_err(|error| format!("log entry {index}: {error}"))?;
                    if entry.head() != position {
                        return Err(format!(
                            "this node's position (entry {}, seq {}) is not the log's entry {} (seq {}, epoch {}): \
                             its journal is from another history",
                            position.index,
                            position.last_seq,
                            entry.index,
                            entry.last_seq(),
                            entry.epoch
                        ));
                    }
                    // A checkpoint there checks the recovered state at once (after a state
                    // transfer, the state a peer's files gave).
                    if let Some(expected) = entry.state_hash {
                        if self.handle.durable_seq() == position.last_seq {
                            self.compare_state(&entry.head(), expected)?;
                            eprintln!(
                                "ledgerd: the state at seq {} matches the checkpoint of log entry {}",
                                position.last_seq, entry.index
                            );
                        }
                    }
                    return Ok(());
                }
                Err(_) => std::thread::sleep(RETRY_PAUSE),
            }
        }
    }

    /// Records the last entry held here in the position file, if it moved.
    fn write_position(&mut self) {
        let head = self.wiring.role.log_head();
        if head.is_none() || head == self.written_position {
            return;
        }
        if let Some(head) = head {
            match crate::position::write(&self.wiring.data_dir, &head) {
                Ok(()) => self.written_position = Some(head),
                Err(error) => eprintln!("ledgerd: replication position not written: {error}"),
            }
        }
    }

    /// As standby: how far behind the log head it is, in records and in time (since the first
    /// report that found it behind). A primary is never behind its own log.
    fn measure_lag(&mut self) {
        if self.wiring.role.is_primary() {
            self.behind_since = None;
            self.wiring.metrics.record_lag(0, 0);
            return;
        }
        let Ok(Some(head)) = self.wiring.store.head() else { return };
        let (_, applied_seq) = self.wiring.role.log_position();
        let records = head.last_seq.saturating_sub(applied_seq);
        let behind_ms = if records == 0 {
            self.behind_since = None;
            0
        } else {
            let since = *self.behind_since.get_or_insert_with(Instant::now);
            u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        self.wiring.metrics.record_lag(records, behind_ms);
    }

    /// Moves this node's trimming floor up to the entry its position file names (never past
    /// it: a restart follows from there). A node without a position holds the floor at 1.
    fn write_floor(&mut self) {
        let floor = self.written_position.map_or(1, |head| head.index.max(1));
        if self.written_floor.is_some_and(|written| written >= floor) {
            return;
        }
        match self.wiring.store.put_floor(&self.wiring.options.node, floor) {
            Ok(()) => self.written_floor = Some(floor),
            Err(error) => eprintln!("ledgerd: trimming floor not written: {}", error.message()),
        }
    }

    /// Writes this replica's record (with its lease) and the position file every
    /// `REPORT_INTERVAL`.
    fn report(&mut self) {
        if self.last_report.is_some_and(|at| at.elapsed() < REPORT_INTERVAL) {
            return;
        }
        self.last_report = Some(Instant::now());
        self.write_position();
        self.write_floor();
        self.measure_lag();
        let (index, seq) = self.wiring.role.log_position();
        let role = if self.wiring.role.is_primary() { 2 } else { 1 };
        let record = ReplicaRecord {
            node: self.wiring.options.node.clone(),
            role,
            index,
            seq,
            addr: self.wiring.options.advertise.clone(),
        };
        if let Err(error) =
            self.wiring.store.put_replica(&record, self.lease_id.load(Ordering::Acquire))
        {
            eprintln!("ledgerd: replica record not written: {}", error.message());
        }
    }
}

fn divergence(head: &Head, expected: u128, actual: u128) -> String {
    format!(
        "state diverged at seq {} (entry {}): the log's checkpoint is {expected:032x}, this replica's state_hash is {actual:032x}",
        head.last_seq, head.index
    )
}

fn state_hash(handle: &Handle) -> Result<u128, String> {
    match handle.query(Query::StateHash) {
        Ok(QueryAnswer::StateHash(hash)) => Ok(hash),
        Ok(other) => Err(format!("a state hash query answered {other:?}")),
        Err(error) => Err(format!("state hash: {error}")),
    }
}
