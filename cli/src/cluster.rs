//! `ledger cluster status`: a replica group as its etcd cluster sees it (the epoch, the
//! primary, the log head, each live replica and its lag, each etcd member). Talks to etcd
//! only: no ledgerd needs to be up, which is when it is most useful.

use replication::status::{self, GroupStatus};

use crate::json::JsonObject;
use crate::report::{Exit, Rendered};

/// Reads and renders the status; exit 0 with a primary, 1 without one (an election is going
/// on, or the group is down), 3 when etcd cannot be read.
pub fn run(endpoints: &str, ledger: &str, timeout_ms: u32, json: bool) -> Rendered {
    let endpoints: Vec<String> =
        endpoints.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect();
    match status::read(&endpoints, ledger, u64::from(timeout_ms)) {
        Ok(group) => {
            let exit = if group.leader.is_some() { Exit::Ok } else { Exit::Rejected };
            let stdout = if json { to_json(&group) + "\n" } else { to_text(&group) };
            Rendered { stdout, stderr: String::new(), exit }
        }
        Err(message) => {
            let stdout = if json {
                JsonObject::new().bool("ok", false).str("error", &message).finish() + "\n"
            } else {
                String::new()
            };
            Rendered { stdout, stderr: format!("error: etcd: {message}\n"), exit: Exit::Connection }
        }
    }
}

fn role_name(role: u8) -> &'static str {
    if role == 2 {
        "primary"
    } else {
        "standby"
    }
}

fn to_text(group: &GroupStatus) -> String {
    let mut out = format!("ledger {}: epoch {}", group.ledger, group.epoch);
    match &group.leader {
        Some(leader) => out += &format!(", primary {} at {}", leader.node, leader.addr),
        None => out += ", no primary",
    }
    match group.head {
        Some(head) => out += &format!(", log head entry {} (seq {})", head.index, head.last_seq),
        None => out += ", empty log",
    }
    match group.oldest_index {
        Some(oldest) => out += &format!(", oldest entry {oldest}\n"),
        None => out += "\n",
    }
    out += &format!(
        "{:<16} {:<8} {:>10} {:>12} {:>10}  address\n",
        "node", "role", "entry", "seq", "lag"
    );
    for replica in &group.replicas {
        let record = &replica.record;
        out += &format!(
            "{:<16} {:<8} {:>10} {:>12} {:>10}  {}\n",
            record.node,
            role_name(record.role),
            record.index,
            record.seq,
            replica.lag_records,
            record.addr
        );
    }
    if !group.floors.is_empty() {
        let floors: Vec<String> =
            group.floors.iter().map(|(node, index)| format!("{node} {index}")).collect();
        out += &format!("trimming floors: {}\n", floors.join(", "));
    }
    for key in &group.unreadable {
        out += &format!("(unreadable replica record {key})\n");
    }
    for member in &group.members {
        match &member.answer {
            Ok((leader, db_size_bytes)) => {
                let role = if *leader { "leader" } else { "follower" };
                out += &format!("etcd {} {role}, db {db_size_bytes} bytes\n", member.endpoint);
            }
            Err(error) => out += &format!("etcd {} unreachable: {error}\n", member.endpoint),
        }
    }
    out
}

fn to_json(group: &GroupStatus) -> String {
    let replicas = group.replicas.iter().map(|replica| {
        let record = &replica.record;
        JsonObject::new()
            .str("node", &record.node)
            .str("role", role_name(record.role))
            .num("entry", record.index)
            .num("seq", record.seq)
            .num("lag_records", replica.lag_records)
            .str("addr", &record.addr)
    });
    let members = group.members.iter().map(|member| {
        let object = JsonObject::new().str("endpoint", &member.endpoint);
        match &member.answer {
            Ok((leader, db_size_bytes)) => object
                .bool("reachable", true)
                .bool("leader", *leader)
                .num("db_size_bytes", u64::try_from(*db_size_bytes).unwrap_or(0)),
            Err(error) => object.bool("reachable", false).str("error", error),
        }
    });
    JsonObject::new()
        .bool("ok", true)
        .str("ledger", &group.ledger)
        .num("epoch", group.epoch)
        .opt_str("primary", group.leader.as_ref().map(|leader| leader.node.as_str()))
        .opt_str("primary_addr", group.leader.as_ref().map(|leader| leader.addr.as_str()))
        .opt_num("head_entry", group.head.map(|head| head.index))
        .opt_num("head_seq", group.head.map(|head| head.last_seq))
        .opt_num("oldest_entry", group.oldest_index)
        .objects(
            "floors",
            group
                .floors
                .iter()
                .map(|(node, index)| JsonObject::new().str("node", node).num("entry", *index)),
        )
        .objects("replicas", replicas)
        .strs("unreadable", group.unreadable.iter().map(String::as_str))
        .objects("etcd", members)
        .finish()
}
