//! The canonical encoding of the complete engine state, and its digest `state_hash`.
//!
//! Every field that influences a future outcome is written, in a fixed order, little endian;
//! the hash indexes are left out because they are rebuilt from what is written, and so is the
//! statistic `commands_applied` (a retry must leave the state, and its hash, unchanged). Two engines
//! with equal encodings answer every future command identically.

use crate::cycle::ChannelDay;
use crate::engine::Engine;
use crate::hash::{DigestSink, IdMap, Sink, SinkExt};
use crate::types::{AccountId, TxId};

/// A side map's entries in `TxId` order: hash-map order must never reach an encoding.
fn sorted<V>(map: &IdMap<V>) -> Vec<(&TxId, &V)> {
    let mut entries: Vec<(&TxId, &V)> = map.iter().collect();
    entries.sort_unstable_by_key(|(tx_id, _)| **tx_id);
    entries
}

/// Version of the canonical state encoding. Version 2 appended the exposure section (per
/// account: unsettled deposits and exposure limit) and the fee section; version 1 is still
/// read: its unsettled amounts are recomputed from the pending deposit records, and it has no
/// exposure limits and no fees.
/// Version 3 appended the fees of pending withdrawals; version 2 has none.
pub const STATE_ENCODING_VERSION: u32 = 3;

impl Engine {
    /// Writes the canonical encoding of the whole state into `sink`.
    pub fn encode_state(&self, sink: &mut impl Sink) {
        sink.bytes(b"LEDGSTAT");
        sink.u32(STATE_ENCODING_VERSION);
        sink.u32(self.config.tx_retained);
        sink.u64(self.config.hash_seed);
        sink.u64(self.now_ns);

        sink.u32(self.currencies.len() as u32);
        for (currency, risk) in self.currencies.iter().zip(&self.risk_accounts) {
            sink.bytes(&currency.code.to_bytes());
            sink.u8(currency.scale);
            sink.u32(risk.map_or(u32::MAX, |id| id.0));
        }

        sink.u32(self.accounts.len() as u32);
        for account in &self.accounts {
            sink.i128(account.available_minor);
            sink.i128(account.frozen_minor);
            sink.i128(account.ledger_minor);
            sink.i128(account.debit_day_used_minor);
            sink.i128(account.tx_amount_max_minor);
            sink.i128(account.daily_debit_max_minor);
            sink.u64(account.user_id);
            sink.u8(account.account_no.as_bytes().len() as u8);
            sink.bytes(account.account_no.padded());
            sink.u32(account.debit_day);
            sink.u32(account.currency.0 as u32);
            sink.u8(account.status as u8);
            sink.u8(account.kind as u8);
        }

        sink.u64(self.txs.len() as u64);
        for record in self.txs.iter_canonical() {
            sink.u128(record.tx_id().0);
            sink.i128(record.amount_minor());
            sink.u32(record.debit);
            sink.u32(record.credit);
            sink.u128(record.link().map_or(0, |link| link.0));
            sink.u32(record.fingerprint);
            sink.u8(record.kind as u8);
            sink.u8(record.state.map_or(u8::MAX, |state| state as u8));
            sink.u8(record.result as u8);
            sink.u8(record.visited);
        }

        sink.u64(self.holds.len() as u64);
        for (hold_id, hold) in sorted(&self.holds) {
            sink.u128(hold_id.0);
            sink.u32(hold.account.0);
            sink.i128(hold.remaining_minor);
            sink.i128(hold.captured_minor);
            sink.u8(hold.expires_ns.is_some() as u8);
            sink.u64(hold.expires_ns.unwrap_or(0));
            sink.u32(hold.day);
        }

        sink.u64(self.refunded.len() as u64);
        for (tx_id, refunded_minor) in sorted(&self.refunded) {
            sink.u128(tx_id.0);
            sink.i128(*refunded_minor);
        }

        sink.u64(self.exposures.len() as u64);
        for (account, exposure) in &self.exposures {
            sink.u32(account.0);
            sink.i128(exposure.unsettled_minor);
            sink.i128(exposure.limit_minor);
        }

        let fee_rules = self.fee_rules();
        sink.u64(fee_rules.len() as u64);
        for (currency, kind, rule) in fee_rules {
            sink.u32(currency);
            sink.u8(kind);
            sink.u32(rule.account);
            sink.i128(rule.fixed_minor);
            sink.u32(rule.rate_bps);
        }

        sink.u64(self.t1_accounts.len() as u64);
        for (account, t1) in &self.t1_accounts {
            sink.u32(account.0);
            sink.u32(t1.clearing.0);
            sink.i128(t1.pending_minor);
        }
        let channel_days =
            |sink: &mut dyn Sink, days: &mut dyn Iterator<Item = (&AccountId, &ChannelDay)>| {
                for (channel, day) in days {
                    sink.u32(channel.0);
                    sink.i128(day.deposits_minor);
                    sink.u64(day.deposits_count);
                    sink.i128(day.withdrawals_minor);
                    sink.u64(day.withdrawals_count);
                }
            };
        sink.u64(self.channel_day.len() as u64);
        channel_days(sink, &mut self.channel_day.iter());
        sink.u32(self.last_cutover.0);
        sink.u64(self.last_cutover.1.len() as u64);
        channel_days(sink, &mut self.last_cutover.1.iter().map(|(channel, day)| (channel, day)));

        sink.u64(self.withdrawal_fees.len() as u64);
        for (tx_id, (account, fee_minor)) in sorted(&self.withdrawal_fees) {
            sink.u128(tx_id.0);
            sink.u32(account.0);
            sink.i128(*fee_minor);
        }
    }

    /// The fee rules that charge something, as (currency, kind, rule), in that order.
    fn fee_rules(&self) -> Vec<(u32, u8, crate::clearing::FeeRule)> {
        let mut rules = Vec::new();
        for (currency, row) in self.fees.iter().enumerate() {
            for (kind, rule) in row.iter().enumerate() {
                if *rule != crate::clearing::FeeRule::NONE {
                    rules.push((currency as u32, kind as u8, *rule));
                }
            }
        }
        rules
    }

    /// A 128-bit digest of the complete state: equal hashes mean equal ledgers. Replay and
    /// recovery compare it with the hash the engine had before.
    pub fn state_hash(&self) -> u128 {
        let mut digest = DigestSink::new();
        self.encode_state(&mut digest);
        digest.finish()
    }
}

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

/// The T+1 entries, the open day's channel totals and the last cutover (version 2).
fn decode_cycles(
    r: &mut Reader<'_>,
    engine: &mut Engine,
    account_count: usize,
) -> Result<(), StateDecodeError> {
    use crate::types::AccountKind;
    let t1_count = r.count(24)?;
    for _ in 0..t1_count {
        let account = r.u32()? as usize;
        let clearing = r.u32()? as usize;
        let pending_minor = r.i128()?;
        let valid = account < account_count
            && clearing < account_count
            && engine.accounts[account].kind == AccountKind::User
            && engine.accounts[clearing].kind == AccountKind::System
            && engine.accounts[account].currency == engine.accounts[clearing].currency
            && !engine.accounts[account].t1;
        if !valid {
            return r.fail("invalid T+1 entry");
        }
        let t1 = crate::cycle::T1Pending { clearing: AccountId(clearing as u32), pending_minor };
        engine.t1_accounts.insert(AccountId(account as u32), t1);
        engine.accounts[account].t1 = true;
    }
    let days = |r: &mut Reader<'_>| -> Result<Vec<(AccountId, ChannelDay)>, StateDecodeError> {
        let count = r.count(52)?;
        let mut days = Vec::with_capacity(count);
        for _ in 0..count {
            let channel = r.u32()?;
            let day = ChannelDay {
                deposits_minor: r.i128()?,
                deposits_count: r.u64()?,
                withdrawals_minor: r.i128()?,
                withdrawals_count: r.u64()?,
            };
            let ordered = days.last().is_none_or(|(last, _): &(AccountId, _)| last.0 < channel);
            if channel as usize >= account_count || !ordered {
                return r.fail("invalid channel day");
            }
            days.push((AccountId(channel), day));
        }
        Ok(days)
    };
    engine.channel_day = days(r)?.into_iter().collect();
    let business_date = r.u32()?;
    let closed = days(r)?;
    if business_date != 0 && !crate::cycle::is_business_date(business_date) {
        return r.fail("invalid business date");
    }
    engine.last_cutover = (business_date, closed);
    Ok(())
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, StateDecodeError> {
        Err(StateDecodeError { offset: self.offset, reason: reason.into() })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], StateDecodeError> {
        let Some(slice) = self.bytes.get(self.offset..self.offset + len) else {
            return self.fail("truncated");
        };
        self.offset += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateDecodeError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StateDecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, StateDecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StateDecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn u128(&mut self) -> Result<u128, StateDecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn i128(&mut self) -> Result<i128, StateDecodeError> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    /// A count, refused when the remaining bytes cannot hold `count` items of `item_len`.
    fn count(&mut self, item_len: usize) -> Result<usize, StateDecodeError> {
        let count = self.u64()? as usize;
        if count.saturating_mul(item_len) > self.bytes.len() - self.offset {
            return self.fail(format!("count {count} larger than the rest of the input"));
        }
        Ok(count)
    }

    fn count32(&mut self, item_len: usize) -> Result<usize, StateDecodeError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(item_len) > self.bytes.len() - self.offset {
            return self.fail(format!("count {count} larger than the rest of the input"));
        }
        Ok(count)
    }
}

impl Engine {
    /// Rebuilds an engine from `encode_state` output (a snapshot payload). The result answers
    /// every future command exactly like the engine that was encoded, and has the same
    /// `state_hash`. Damaged input is an error, never a panic.
    pub fn decode_state(bytes: &[u8]) -> Result<Engine, StateDecodeError> {
        use crate::account::Account;
        use crate::command::TxKind;
        use crate::currency::CurrencyDef;
        use crate::engine::{EngineConfig, Hold};
        use crate::limits::{ACCOUNTS_MAX, CURRENCIES_MAX, CURRENCY_SCALE_MAX, TX_RETAINED_MAX};
        use crate::outcome::ResultCode;
        use crate::txtable::TxRecord;
        use crate::types::{
            AccountId, AccountKind, AccountNo, AccountStatus, CurrencyCode, CurrencyId, TxState,
        };

        let mut r = Reader { bytes, offset: 0 };
        if r.take(8)? != b"LEDGSTAT" {
            return r.fail("not a ledger state (bad magic)");
        }
        let version = r.u32()?;
        if !(1..=STATE_ENCODING_VERSION).contains(&version) {
            return r.fail(format!("state encoding version {version} is not supported"));
        }
        let tx_retained = r.u32()?;
        if !(1..=TX_RETAINED_MAX).contains(&tx_retained) {
            return r.fail(format!("tx_retained {tx_retained} out of range"));
        }
        let config = EngineConfig { tx_retained, hash_seed: r.u64()? };
        let mut engine = Engine::new(config);
        engine.now_ns = r.u64()?;

        let currency_count = r.count32(13)?;
        if currency_count > CURRENCIES_MAX as usize {
            return r.fail("too many currencies");
        }
        engine.currencies.clear();
        engine.risk_accounts.clear();
        let mut risk_ids = Vec::with_capacity(currency_count);
        for _ in 0..currency_count {
            let raw = r.array::<8>()?;
            let len = raw.iter().position(|&b| b == 0).unwrap_or(8);
            let Some(code) =
                std::str::from_utf8(&raw[..len]).ok().and_then(|t| CurrencyCode::new(t).ok())
            else {
                return r.fail("invalid currency code");
            };
            let scale = r.u8()?;
            if scale > CURRENCY_SCALE_MAX {
                return r.fail("invalid currency scale");
            }
            engine.currencies.push(CurrencyDef { code, scale });
            risk_ids.push(r.u32()?);
        }
        engine.fees =
            vec![[crate::clearing::FeeRule::NONE; crate::clearing::FEE_KINDS]; currency_count];

        let account_count = r.count32(147)?;
        if account_count > ACCOUNTS_MAX as usize {
            return r.fail("too many accounts");
        }
        engine.accounts.reserve_exact(account_count);
        for index in 0..account_count {
            let available_minor = r.i128()?;
            let frozen_minor = r.i128()?;
            let ledger_minor = r.i128()?;
            let debit_day_used_minor = r.i128()?;
            let tx_amount_max_minor = r.i128()?;
            let daily_debit_max_minor = r.i128()?;
            let user_id = r.u64()?;
            let len = r.u8()? as usize;
            let padded = r.array::<32>()?;
            let Some(account_no) = padded.get(..len).and_then(|key| AccountNo::new(key).ok())
            else {
                return r.fail("invalid account_no");
            };
            let debit_day = r.u32()?;
            let currency = r.u32()?;
            if currency as usize >= currency_count {
                return r.fail("account currency out of range");
            }
            let status = match r.u8()? {
                0 => AccountStatus::Active,
                1 => AccountStatus::DebitFrozen,
                2 => AccountStatus::Closed,
                other => return r.fail(format!("account status {other}")),
            };
            let kind = match r.u8()? {
                0 => AccountKind::User,
                1 => AccountKind::System,
                2 => AccountKind::Risk,
                other => return r.fail(format!("account kind {other}")),
            };
            if engine.account_index.find(&account_no, &engine.accounts).is_some() {
                return r.fail(format!("duplicate account {account_no}"));
            }
            engine.accounts.push(Account {
                available_minor,
                frozen_minor,
                ledger_minor,
                account_no,
                status,
                kind,
                currency: CurrencyId(currency as u16),
                debit_day,
                user_id,
                tx_amount_max_minor,
                daily_debit_max_minor,
                debit_day_used_minor,
                exposure_tracked: false,
                t1: false,
            });
            engine.account_index.insert(&account_no, AccountId(index as u32));
        }
        for risk in risk_ids {
            let risk = (risk != u32::MAX).then_some(AccountId(risk));
            if risk.is_some_and(|id| id.0 as usize >= account_count) {
                return r.fail("risk account out of range");
            }
            engine.risk_accounts.push(risk);
        }

        let account_ok =
            |id: u32| id == crate::txtable::NO_ACCOUNT || (id as usize) < account_count;
        let tx_count = r.count(64)?;
        for _ in 0..tx_count {
            let tx_id = TxId(r.u128()?);
            let amount_minor = r.i128()?;
            let debit = r.u32()?;
            let credit = r.u32()?;
            let link = TxId(r.u128()?);
            let fingerprint = r.u32()?;
            let Some(kind) = TxKind::from_u8(r.u8()?) else { return r.fail("transaction kind") };
            let state = match r.u8()? {
                u8::MAX => None,
                raw => match TxState::from_u8(raw) {
                    Some(state) => Some(state),
                    None => return r.fail("transaction state"),
                },
            };
            let Some(result) = ResultCode::from_u8(r.u8()?) else {
                return r.fail("result code");
            };
            let visited = r.u8()?;
            if !account_ok(debit) || !account_ok(credit) {
                return r.fail("transaction account out of range");
            }
            if engine.txs.find(tx_id).is_some() {
                return r.fail(format!("duplicate tx_id {:#x}", tx_id.0));
            }
            let mut record = TxRecord::new(tx_id, kind, result);
            record.set_amount_minor(amount_minor);
            record.debit = debit;
            record.credit = credit;
            record.set_link(link);
            record.fingerprint = fingerprint;
            record.state = state;
            record.visited = visited;
            if let Some(evicted) = engine.txs.insert(record) {
                if !evicted.pinned {
                    return r.fail("more finished transactions than the retention window");
                }
            }
        }

        let hold_count = r.count(65)?;
        for _ in 0..hold_count {
            let hold_id = TxId(r.u128()?);
            let account = r.u32()?;
            let remaining_minor = r.i128()?;
            let captured_minor = r.i128()?;
            let has_expiry = r.u8()?;
            let expires_ns = r.u64()?;
            let day = r.u32()?;
            if account as usize >= account_count || has_expiry > 1 {
                return r.fail("invalid hold");
            }
            let expires_ns = (has_expiry == 1).then_some(expires_ns);
            let hold = Hold {
                account: AccountId(account),
                remaining_minor,
                captured_minor,
                expires_ns,
                day,
            };
            if engine.holds.insert(hold_id, hold).is_some() {
                return r.fail("duplicate hold");
            }
            if let Some(expires_ns) = expires_ns {
                engine.expiries.insert((expires_ns, hold_id));
            }
        }

        let refund_count = r.count(32)?;
        for _ in 0..refund_count {
            let tx_id = TxId(r.u128()?);
            let refunded_minor = r.i128()?;
            engine.refunded.insert(tx_id, refunded_minor);
        }

        if version == 1 {
            for (account, unsettled_minor) in engine.unsettled_from_records() {
                let exposure = crate::clearing::Exposure {
                    unsettled_minor,
                    limit_minor: crate::account::LIMIT_NONE,
                };
                engine.store_exposure(account, exposure);
            }
        } else {
            let exposure_count = r.count(36)?;
            for _ in 0..exposure_count {
                let account = r.u32()?;
                let unsettled_minor = r.i128()?;
                let limit_minor = r.i128()?;
                let exposure = crate::clearing::Exposure { unsettled_minor, limit_minor };
                if account as usize >= account_count
                    || unsettled_minor < 0
                    || exposure == crate::clearing::Exposure::NONE
                    || engine.accounts[account as usize].exposure_tracked
                {
                    return r.fail("invalid exposure entry");
                }
                engine.store_exposure(AccountId(account), exposure);
            }
            let fee_count = r.count(29)?;
            for _ in 0..fee_count {
                let currency = r.u32()? as usize;
                let kind = r.u8()? as usize;
                let account = r.u32()?;
                let fixed_minor = r.i128()?;
                let rate_bps = r.u32()?;
                let valid = currency < currency_count
                    && kind < crate::clearing::FEE_KINDS
                    && (account as usize) < account_count
                    && engine.accounts[account as usize].kind == AccountKind::System
                    && engine.accounts[account as usize].currency.0 as usize == currency
                    && (0..=crate::limits::AMOUNT_MINOR_MAX).contains(&fixed_minor)
                    && rate_bps <= crate::clearing::FEE_RATE_BPS_MAX
                    && (fixed_minor > 0 || rate_bps > 0)
                    && engine.fees[currency][kind] == crate::clearing::FeeRule::NONE;
                if !valid {
                    return r.fail("invalid fee rule");
                }
                engine.fees[currency][kind] =
                    crate::clearing::FeeRule { account, fixed_minor, rate_bps };
            }
            decode_cycles(&mut r, &mut engine, account_count)?;
        }
        if version >= 3 {
            let fee_count = r.count(36)?;
            for _ in 0..fee_count {
                let tx_id = TxId(r.u128()?);
                let account = r.u32()?;
                let fee_minor = r.i128()?;
                let valid = (account as usize) < account_count
                    && (1..=crate::limits::AMOUNT_MINOR_MAX * 2).contains(&fee_minor)
                    && engine
                        .withdrawal_fees
                        .insert(tx_id, (AccountId(account), fee_minor))
                        .is_none();
                if !valid {
                    return r.fail("invalid withdrawal fee");
                }
            }
        }
        if r.offset != bytes.len() {
            return r.fail("trailing bytes");
        }
        Ok(engine)
    }
}
