//! How a client behaves: its timeouts and the largest response it decodes.

use crate::limits::RESPONSE_BYTES_MAX_DEFAULT;

/// A client's settings; `ClientOptions::new` gives the defaults for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// TCP connect timeout of each (re)connection to a member.
    pub connect_timeout_ms: u64,
    /// The bound on every call, all its attempts together (a submitted transaction too).
    pub request_timeout_ms: u64,
    /// A watch that hears nothing for this long asks its member for a progress report; when
    /// that goes unanswered for as long again, the watch fails with `Error::Timeout` (a dead,
    /// stopped or cut-off member). Default: the request timeout.
    pub watch_idle_ms: u64,
    /// The largest response decoded, in bytes (a range result, one watch response).
    pub response_bytes_max: usize,
}

impl ClientOptions {
    /// The given timeouts; the watch probe after `request_timeout_ms` of silence; responses up
    /// to `RESPONSE_BYTES_MAX_DEFAULT`.
    pub fn new(connect_timeout_ms: u64, request_timeout_ms: u64) -> ClientOptions {
        ClientOptions {
            connect_timeout_ms,
            request_timeout_ms,
            watch_idle_ms: request_timeout_ms,
            response_bytes_max: RESPONSE_BYTES_MAX_DEFAULT,
        }
    }
}
