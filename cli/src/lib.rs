//! The `ledger` command-line client (user guide: `cli/CLI.md`), as a library so that
//! tests drive it without a process: [`run`] takes the arguments and what the binary draws from
//! the outside world (the clock, a random tx id) and returns what to print and the exit code.
//!
//! - [`args`]: the clap command line and [`args::Cli::plan`], arguments to one request.
//! - [`report`]: what a run found out, rendered as text or JSON, and the exit code.
//! - [`txid`]: tx ids in and out (UUID form).
//! - [`json`]: the JSON writer.
//!
//! A run makes one connection and one request; after a command that touched accounts it
//! looks them up (by the numbers the command named, or the accounts of its own transaction
//! record) to print their balances with their currency's decimals.

pub mod args;
pub mod cluster;
pub mod exit;
pub mod json;
pub mod reconcile;
pub mod report;
pub mod txid;

use std::ffi::OsString;

use clap::Parser;
use engine::{AccountNo, AccountView, ResultCode, TxId};

use protocol::auth::ClientCredentials;
use protocol::client::{ClientError, ClientOptions};
use protocol::group::GroupClient;
use protocol::tls::ClientTls;
use protocol::wire::ErrorCode;

pub use args::{Cli, Plan, RunEnv, Submission};
pub use report::{render, Exit, Rendered, Report};

use report::{named_accounts, resolve_balances, target_tx, ErrorKind, Submitted, TxReport};
use txid::format_tx_id;

/// Runs the command line `args` (the program name first) and returns what to print.
pub fn run<I, T>(args: I, env: &RunEnv) -> Rendered
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => return clap_error(&error, wants_json(&args)),
    };
    if let args::Cmd::Cluster(args::ClusterCmd::Status(args)) = &cli.command {
        return cluster::run(&args.etcd, &args.ledger, cli.timeout_ms, cli.json);
    }
    if let args::Cmd::Credentials(args::CredentialsCmd::Add(args)) = &cli.command {
        return add_credentials(args, cli.json);
    }
    if let args::Cmd::Reconcile(args) = &cli.command {
        return reconcile::run(&args.channel, &args.statement, args.business_date, &args.data_dir);
    }
    let report = match cli.plan(env) {
        Ok(plan) => execute(&cli, &plan),
        Err((kind, message)) => Report::error(kind, &message),
    };
    render(&report, cli.json)
}

/// `ledger credentials add`: exit 0 with the files named, 1 when refused (the client exists,
/// a file exists), 2 never (clap handles usage), 3 when a file cannot be read or written.
fn add_credentials(args: &args::CredentialsAddArgs, json: bool) -> Rendered {
    use protocol::auth::{Credentials, CredentialsError, Role};
    let role = match args.role {
        args::RoleArg::Read => Role::Read,
        args::RoleArg::Transact => Role::Transact,
        args::RoleArg::Admin => Role::Admin,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(format!("{}.credentials", args.client_id)));
    let added = Credentials::add_client(&args.store, &args.client_id, role, &out);
    let (exit, message) = match &added {
        Ok(()) => (
            Exit::Ok,
            format!(
                "added client {} ({}) to {}; its secret is in {} (mode 0600); restart ledgerd to admit it",
                args.client_id,
                role.name(),
                args.store.display(),
                out.display()
            ),
        ),
        Err(error @ (CredentialsError::Io { .. } | CredentialsError::Random { .. })) => {
            (Exit::Connection, format!("error: {error}"))
        }
        Err(error) => (Exit::Rejected, format!("error: {error}")),
    };
    if json {
        let object = json::JsonObject::new().bool("ok", added.is_ok());
        let object = match &added {
            Ok(()) => object
                .str("client_id", &args.client_id)
                .str("role", role.name())
                .str("store", &args.store.to_string_lossy())
                .str("client_file", &out.to_string_lossy()),
            Err(_) => object.str("error", &message),
        };
        return Rendered { stdout: object.finish() + "\n", stderr: String::new(), exit };
    }
    match added {
        Ok(()) => Rendered { stdout: message + "\n", stderr: String::new(), exit },
        Err(_) => Rendered { stdout: String::new(), stderr: message + "\n", exit },
    }
}

/// Whether `--json` is among the arguments (before a `--`), for usage errors, which clap
/// reports before the flag is parsed.
fn wants_json(args: &[OsString]) -> bool {
    args.iter().skip(1).take_while(|arg| *arg != "--").any(|arg| arg == "--json")
}

/// `--help` and `--version` (exit 0, stdout), or a usage error (exit 2): clap's text on
/// stderr, and in JSON mode also an object on stdout.
fn clap_error(error: &clap::Error, json: bool) -> Rendered {
    let text = error.render().to_string();
    if error.exit_code() == 0 {
        return Rendered { stdout: text, stderr: String::new(), exit: Exit::Ok };
    }
    let mut rendered = render(&Report::error(ErrorKind::Usage, text.trim_end()), json);
    rendered.stderr = text;
    rendered
}

/// Connects, makes the request of `plan`, and reports.
pub fn execute(cli: &Cli, plan: &Plan) -> Report {
    let submission = match plan {
        Plan::Submit(submission) => Some(*submission),
        Plan::Balance(_) | Plan::Exposure(_) | Plan::Tx(_) => None,
    };
    let credentials = match ClientCredentials::from_env_or_default(cli.credentials.as_deref()) {
        Ok(credentials) => credentials,
        Err(error) => {
            let message = format!("credentials: {error}");
            return Report::Error { kind: ErrorKind::Auth, message, code: None, submission };
        }
    };
    let tls = match &cli.tls_ca {
        None => None,
        Some(ca) => {
            let client_cert = cli.tls_client_cert.as_deref().zip(cli.tls_client_key.as_deref());
            match ClientTls::from_files(ca, client_cert, cli.tls_server_name.as_deref()) {
                Ok(tls) => Some(tls),
                Err(error) => {
                    let message = format!("tls: {error}");
                    return Report::Error {
                        kind: ErrorKind::Connection,
                        message,
                        code: None,
                        submission,
                    };
                }
            }
        }
    };
    let options = ClientOptions {
        connect_timeout_ms: cli.timeout_ms,
        request_timeout_ms: cli.timeout_ms,
        tls,
        ..ClientOptions::default()
    };
    // Several addresses: the nodes of a replica group; requests go to its primary.
    let addrs: Vec<String> =
        cli.addr.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect();
    let failover_timeout_ms = u64::from(cli.timeout_ms);
    let connected = GroupClient::connect(&addrs, &credentials, options, failover_timeout_ms);
    let mut client = match connected {
        Ok(client) => client,
        Err(error) => return client_error(error, submission),
    };
    let report = match plan {
        Plan::Submit(submission) => submit(&mut client, *submission),
        Plan::Balance(account_no) => balance(&mut client, account_no),
        Plan::Exposure(account_no) => exposure(&mut client, account_no),
        Plan::Tx(tx_id) => tx(&mut client, *tx_id),
    };
    client.close();
    let mut report = report;
    if let (Report::Submitted(submitted), args::Cmd::Cutover(args)) = (&mut report, &cli.command) {
        if submitted.outcome.is_ok() {
            submitted.settlement_files =
                settlement_files(&args.data_dir, args.business_date, cli.timeout_ms);
        }
    }
    report
}

/// The settlement files and netting reports `ledgerd` wrote for `business_date` under
/// `data_dir` (it writes them as its channel processors apply the cutover: wait up to
/// `timeout_ms` for the first settlement file).
fn settlement_files(
    data_dir: &std::path::Path,
    business_date: u32,
    timeout_ms: u32,
) -> Vec<String> {
    let dir = data_dir.join(settlement::SETTLEMENT_DIR_NAME);
    let dirs = [dir.clone(), dir.join(settlement::NETTING_DIR_NAME)];
    let suffix = format!("-{business_date}.csv");
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.min(5_000) as u64);
    loop {
        let mut found: Vec<String> = dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()))
            .filter(|path| path.to_str().is_some_and(|name| name.ends_with(&suffix)))
            .map(|path| path.display().to_string())
            .collect();
        // A processor writes its netting report first and its settlement file last.
        let settled = found.iter().any(|path| !path.contains(settlement::NETTING_DIR_NAME));
        if settled || std::time::Instant::now() >= deadline {
            found.sort();
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn submit(client: &mut GroupClient, submission: Submission) -> Report {
    let outcome = match client.submit(vec![(submission.tx_id, submission.body)]) {
        Ok(outcomes) => match outcomes.as_slice() {
            [outcome] => *outcome,
            _ => {
                // The client checks that a reply has one outcome per command.
                let reason = format!("{} outcomes for one command", outcomes.len());
                return Report::OutcomeUnknown { submission, reason };
            }
        },
        Err(error) => return client_error(error, Some(submission)),
    };
    let mut warnings = Vec::new();
    let mut balances = Vec::new();
    if !outcome.balances().is_empty() {
        let (accounts, lookup_error) = touched_accounts(client, &submission);
        let (resolved, resolve_error) = resolve_balances(outcome.balances(), &accounts);
        balances = resolved;
        warnings.extend(resolve_error);
        warnings.extend(lookup_error.map(|error| format!("looking up the accounts: {error}")));
    }
    let mut target_state = None;
    if let (true, Some(target)) = (outcome.is_ok(), target_tx(&submission.body)) {
        match client.tx(target) {
            Ok(view) => target_state = view.and_then(|view| view.state),
            Err(error) => warnings.push(format!("looking up {}: {error}", format_tx_id(target))),
        }
    }
    let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
    Report::Submitted(Box::new(Submitted {
        submission,
        outcome,
        balances,
        target_state,
        warning,
        settlement_files: Vec::new(),
    }))
}

/// The accounts a submitted command touched, as far as they can be looked up: the ones it
/// names, and those of its own transaction record when it names another transaction. The
/// command's result is known by now, so a failed lookup is only a note.
fn touched_accounts(
    client: &mut GroupClient,
    submission: &Submission,
) -> (Vec<AccountView>, Option<String>) {
    let (mut names, in_tx_record) = named_accounts(&submission.body);
    if in_tx_record {
        match client.tx(submission.tx_id) {
            Ok(Some(tx)) => names.extend(tx.debit.into_iter().chain(tx.credit)),
            Ok(None) => {}
            Err(error) => return (Vec::new(), Some(error.to_string())),
        }
    }
    let mut accounts: Vec<AccountView> = Vec::with_capacity(names.len());
    for (index, account_no) in names.iter().enumerate() {
        if names[..index].contains(account_no) {
            continue;
        }
        match client.account(account_no) {
            Ok(Some(account)) => accounts.push(account),
            Ok(None) => {}
            Err(error) => return (accounts, Some(error.to_string())),
        }
    }
    (accounts, None)
}

fn balance(client: &mut GroupClient, account_no: &AccountNo) -> Report {
    match client.account(account_no) {
        Ok(Some(account)) => Report::Account(account),
        Ok(None) => Report::NotFound {
            result: ResultCode::AccountNotFound,
            message: format!("{}: {account_no}", ResultCode::AccountNotFound.describe()),
        },
        Err(error) => client_error(error, None),
    }
}

fn exposure(client: &mut GroupClient, account_no: &AccountNo) -> Report {
    match client.exposure(account_no) {
        Ok(Some(exposure)) => Report::Exposure(exposure),
        Ok(None) => Report::NotFound {
            result: ResultCode::AccountNotFound,
            message: format!("{}: {account_no}", ResultCode::AccountNotFound.describe()),
        },
        Err(error) => client_error(error, None),
    }
}

fn tx(client: &mut GroupClient, tx_id: TxId) -> Report {
    let view = match client.tx(tx_id) {
        Ok(Some(view)) => view,
        Ok(None) => {
            let message = format!(
                "{}: {} (never seen, still queued, or older than the ledger's retention window)",
                ResultCode::TxNotFound.describe(),
                format_tx_id(tx_id)
            );
            return Report::NotFound { result: ResultCode::TxNotFound, message };
        }
        Err(error) => return client_error(error, None),
    };
    let (money, warning) = match view.debit.or(view.credit) {
        None => (None, None),
        Some(account_no) => match client.account(&account_no) {
            Ok(Some(account)) => (Some((account.currency, account.scale)), None),
            Ok(None) => {
                (None, Some(format!("account {account_no} not found: amounts in minor units")))
            }
            Err(error) => (None, Some(format!("looking up {account_no}: {error}"))),
        },
    };
    Report::Tx(TxReport { view, money, warning })
}

/// The report of a client error: an unknown outcome for a SUBMIT that may have run, else an
/// error after which nothing was executed.
fn client_error(error: ClientError, submission: Option<Submission>) -> Report {
    let kind = match &error {
        ClientError::OutcomeUnknown { reason, .. } => {
            if let Some(submission) = submission {
                return Report::OutcomeUnknown { submission, reason: reason.clone() };
            }
            ErrorKind::Connection
        }
        ClientError::AuthFailed { .. } => ErrorKind::Auth,
        ClientError::Refused { code: ErrorCode::Forbidden | ErrorCode::AuthFailed, .. } => {
            ErrorKind::Auth
        }
        ClientError::Refused { .. } => ErrorKind::Refused,
        ClientError::InvalidOptions(_)
        | ClientError::Connect { .. }
        | ClientError::Handshake { .. }
        | ClientError::Tls { .. }
        | ClientError::NoAnswer { .. }
        | ClientError::Closed { .. }
        | ClientError::BatchLen { .. }
        | ClientError::Encode(_)
        | ClientError::InFlightFull { .. }
        | ClientError::NothingInFlight => ErrorKind::Connection,
    };
    let code = if let ClientError::Refused { code, .. } = &error { Some(*code) } else { None };
    Report::Error { kind, message: error.to_string(), code, submission }
}

#[cfg(test)]
mod tests;
