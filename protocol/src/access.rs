//! Who may send what: the connection-level gate of the server ([`admit`]) and the role's
//! rule for each operation ([`Role::authorize`]). Above both `auth` (roles, secrets,
//! credentials) and `wire` (the messages), so neither needs the other's policy.

use crate::auth::Role;
use crate::wire::{ErrorCode, Message};

impl Role {
    /// Whether an authenticated client with this role may send `message`: `Ok`, or the error
    /// code of the ERROR reply (`Forbidden` for a command the role may not submit — the whole
    /// frame is refused — and `UnexpectedOperation` for HELLO again or for a reply operation).
    pub fn authorize(self, message: &Message) -> Result<(), ErrorCode> {
        match message {
            Message::Ping { .. }
            | Message::QueryAccount(_)
            | Message::QueryTx(_)
            | Message::QueryExposure(_) => Ok(()),
            Message::Submit(commands) => {
                if commands.iter().all(|(_, body)| self.allows_command(body.kind())) {
                    Ok(())
                } else {
                    Err(ErrorCode::Forbidden)
                }
            }
            Message::Hello(_)
            | Message::HelloOk(_)
            | Message::Pong { .. }
            | Message::SubmitReply(_)
            | Message::Account(_)
            | Message::Tx(_)
            | Message::Exposure(_)
            | Message::Error(_) => Err(ErrorCode::UnexpectedOperation),
        }
    }
}

/// Whether a connection may send `message`: before a successful HELLO (`role` is `None`) only
/// HELLO and PING are admitted (anything else is `NotAuthenticated`, which closes the
/// connection); after it, [`Role::authorize`] decides.
pub fn admit(role: Option<Role>, message: &Message) -> Result<(), ErrorCode> {
    match role {
        Some(role) => role.authorize(message),
        None if matches!(message, Message::Hello(_) | Message::Ping { .. }) => Ok(()),
        None => Err(ErrorCode::NotAuthenticated),
    }
}
