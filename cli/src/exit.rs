//! How a run ends: its exit code ([`Exit`]) and, when it failed before getting an answer from
//! the ledger, why ([`ErrorKind`]). Below both `args` (which refuses a command line with a
//! `Usage` error) and `report` (which prints either).

/// The process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done (also a duplicate of a command that was applied).
    Ok = 0,
    /// The ledger rejected the command, or the account or transaction does not exist.
    Rejected = 1,
    /// A malformed command line; nothing was sent.
    Usage = 2,
    /// Connection, credentials, authentication or protocol error; nothing was executed.
    Connection = 3,
    /// The command may or may not have been executed.
    OutcomeUnknown = 4,
}

/// Why a run failed before getting an answer from the ledger (exit codes 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line is wrong (exit 2).
    Usage,
    /// No connection, a broken connection, no answer, a protocol error (exit 3).
    Connection,
    /// Credentials file, authentication, or the role does not allow the command (exit 3).
    Auth,
    /// The server refused the request (busy, shutting down, ...): nothing was executed (exit 3).
    Refused,
}

impl ErrorKind {
    /// Its JSON name (`error` field).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Connection => "connection",
            ErrorKind::Auth => "auth",
            ErrorKind::Refused => "refused",
        }
    }

    /// The exit code of a run that failed this way.
    pub(crate) fn exit(self) -> Exit {
        match self {
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Connection | ErrorKind::Auth | ErrorKind::Refused => Exit::Connection,
        }
    }
}
