//! The binary encoding of commands, as journaled: bincode 2 with a fixed configuration
//! (little endian, fixed-width integers, no limit beyond the input slice), spelled out byte by
//! byte in `journal/FORMAT.md` so journals stay readable whatever happens to the crate.
//!
//! Keys are validated on decode exactly as on construction: a decoded command is as sound as
//! one built in code.

use bincode::config::{Configuration, Fixint, LittleEndian};
use bincode::de::{Decode, Decoder};
use bincode::enc::{Encode, Encoder};
use bincode::error::{DecodeError, EncodeError};

use crate::command::Command;
use crate::limits::{ACCOUNT_NO_LEN_MAX, CURRENCY_CODE_LEN_MAX};
use crate::types::{AccountNo, CurrencyCode};

/// The bincode configuration of every encoded command.
pub const COMMAND_CODEC: Configuration<LittleEndian, Fixint> =
    bincode::config::standard().with_little_endian().with_fixed_int_encoding();

/// Largest encoded command, in bytes (an `OpenAccount` with both limits).
pub const COMMAND_LEN_BYTES_MAX: usize = 256;

/// Why bytes are not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDecodeError(pub String);

impl std::fmt::Display for CommandDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid command encoding: {}", self.0)
    }
}

impl std::error::Error for CommandDecodeError {}

/// Appends the encoding of `command` to `out`.
pub fn encode_command(command: &Command, out: &mut Vec<u8>) {
    let start = out.len();
    bincode::encode_into_std_write(command, out, COMMAND_CODEC)
        .expect("writing into a Vec cannot fail");
    debug_assert!(out.len() - start <= COMMAND_LEN_BYTES_MAX);
}

/// Decodes one command that must fill `bytes` exactly.
pub fn decode_command(bytes: &[u8]) -> Result<Command, CommandDecodeError> {
    let (command, used) = bincode::decode_from_slice::<Command, _>(bytes, COMMAND_CODEC)
        .map_err(|error| CommandDecodeError(error.to_string()))?;
    if used != bytes.len() {
        return Err(CommandDecodeError(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(command)
}

impl Encode for AccountNo {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        let bytes = self.as_bytes();
        (bytes.len() as u8).encode(encoder)?;
        for byte in bytes {
            byte.encode(encoder)?;
        }
        Ok(())
    }
}

impl<Context> Decode<Context> for AccountNo {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let len = u8::decode(decoder)? as usize;
        if len > ACCOUNT_NO_LEN_MAX {
            return Err(DecodeError::OtherString(format!("account_no of {len} bytes")));
        }
        let mut bytes = [0u8; ACCOUNT_NO_LEN_MAX];
        for byte in &mut bytes[..len] {
            *byte = u8::decode(decoder)?;
        }
        AccountNo::new(&bytes[..len])
            .map_err(|error| DecodeError::OtherString(format!("account_no: {error}")))
    }
}
bincode::impl_borrow_decode!(AccountNo);

impl Encode for CurrencyCode {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.to_bytes().encode(encoder)
    }
}

impl<Context> Decode<Context> for CurrencyCode {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let bytes = <[u8; CURRENCY_CODE_LEN_MAX]>::decode(decoder)?;
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(CURRENCY_CODE_LEN_MAX);
        let text = std::str::from_utf8(&bytes[..len])
            .map_err(|_| DecodeError::OtherString("currency code not ASCII".into()))?;
        let code = CurrencyCode::new(text)
            .map_err(|error| DecodeError::OtherString(format!("currency code: {error}")))?;
        if code.to_bytes() != bytes {
            return Err(DecodeError::OtherString("currency code padding not zero".into()));
        }
        Ok(code)
    }
}
bincode::impl_borrow_decode!(CurrencyCode);
