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
            // A state transfer copies the whole ledger: admin only.
            Message::StateOffer { .. } | Message::StateRead(_) if self == Role::Admin => Ok(()),
            Message::StateOffer { .. } | Message::StateRead(_) => Err(ErrorCode::Forbidden),
            Message::Hello(_)
            | Message::HelloOk(_)
            | Message::Pong { .. }
            | Message::SubmitReply(_)
            | Message::Account(_)
            | Message::Tx(_)
            | Message::Exposure(_)
            | Message::StateFiles(_)
            | Message::StateChunk(_)
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

/// The message of a `Forbidden` refusal of `message` for `role`, in words: which role, and
/// which request or command (the first one of a SUBMIT the role may not send).
pub fn forbidden_message(role: Role, message: &Message) -> String {
    let role_name = role.name();
    match message {
        Message::Submit(commands) => {
            let refused = commands
                .iter()
                .enumerate()
                .find(|(_, (_, body))| !role.allows_command(body.kind()));
            match refused {
                Some((index, (_, body))) => format!(
                    "role {role_name} may not submit {} (command {index})",
                    body.kind().name()
                ),
                None => format!("role {role_name} may not send SUBMIT"),
            }
        }
        other => format!("role {role_name} may not send {}", other.op()),
    }
}
