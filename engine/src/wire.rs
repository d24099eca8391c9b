//! Reading the canonical state encoding: a bounds-checked little-endian reader and the error
//! every part's decoder returns. Damaged input is an error, never a panic.

/// Why bytes are not a valid state encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDecodeError {
    /// Byte offset where decoding stopped.
    pub offset: usize,
    /// What was wrong there.
    pub reason: String,
}

impl std::fmt::Display for StateDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid state encoding at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for StateDecodeError {}

/// A bounds-checked little-endian reader.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// Whether every byte was read.
    pub fn at_end(&self) -> bool {
        self.offset == self.bytes.len()
    }

    pub fn fail<T>(&self, reason: impl Into<String>) -> Result<T, StateDecodeError> {
        Err(StateDecodeError { offset: self.offset, reason: reason.into() })
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], StateDecodeError> {
        let Some(slice) = self.bytes.get(self.offset..self.offset + len) else {
            return self.fail("truncated");
        };
        self.offset += len;
        Ok(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], StateDecodeError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, StateDecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u32(&mut self) -> Result<u32, StateDecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, StateDecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, StateDecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    pub fn i128(&mut self) -> Result<i128, StateDecodeError> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    /// A count, refused when the remaining bytes cannot hold `count` items of `item_len`.
    pub fn count(&mut self, item_len: usize) -> Result<usize, StateDecodeError> {
        let count = self.u64()? as usize;
        if count.saturating_mul(item_len) > self.bytes.len() - self.offset {
            return self.fail(format!("count {count} larger than the rest of the input"));
        }
        Ok(count)
    }

    pub fn count32(&mut self, item_len: usize) -> Result<usize, StateDecodeError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(item_len) > self.bytes.len() - self.offset {
            return self.fail(format!("count {count} larger than the rest of the input"));
        }
        Ok(count)
    }
}
