//! The line protocol (`BANK.md`): ASCII lines ending in `\n`, fields separated by one space.

use std::fmt;

/// Longest line either side sends, in bytes (without the `\n`).
pub const LINE_LEN_MAX: usize = 256;

/// What a settlement moves, seen from the bank.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Money the customer paid in: the bank collects it.
    Deposit,
    /// Money paid out to the customer.
    Withdraw,
}

impl Direction {
    /// The protocol word.
    pub fn word(self) -> &'static str {
        match self {
            Direction::Deposit => "DEPOSIT",
            Direction::Withdraw => "WITHDRAW",
        }
    }
}

/// A settlement instruction: `SETTLE <id> <DEPOSIT|WITHDRAW> <amount> <currency>`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Instruction {
    /// The instruction id (the ledger sends the deposit's or withdrawal's `tx_id`).
    pub id: u128,
    /// Deposit or withdrawal.
    pub direction: Direction,
    /// The amount as a decimal in major units, exactly as sent (never parsed into a float).
    pub amount: String,
    /// The currency code.
    pub currency: String,
}

/// Most items one net instruction carries.
pub const NET_ITEMS_MAX: usize = 4_096;

/// One transaction inside a net instruction: `ITEM <id> <DEPOSIT|WITHDRAW> <amount>`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetItem {
    /// The transaction's id (the ledger's `tx_id`).
    pub id: u128,
    /// Deposit or withdrawal.
    pub direction: Direction,
    /// The gross amount, in major units as the ledger wrote it.
    pub amount: String,
}

/// A net settlement instruction: one payment of the net amount that settles every item.
/// `NET <id> <DEPOSIT|WITHDRAW> <net_amount> <currency> <count>`, then `count` item lines.
/// The net is Σ deposits − Σ withdrawals; its direction is `DEPOSIT` when that is ≥ 0.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetInstruction {
    /// The batch id (chosen by the ledger).
    pub id: u128,
    /// Which way the net amount moves.
    pub direction: Direction,
    /// The net amount (≥ 0) in major units.
    pub amount: String,
    /// The currency of the net and of every item.
    pub currency: String,
    /// The gross transactions the net settles (filled in after the header is parsed).
    pub items: Vec<NetItem>,
}

impl NetInstruction {
    /// Checks that the items are distinct and add up to the net amount and direction.
    pub fn check(&self) -> Result<(), ParseError> {
        let mut ids: Vec<u128> = self.items.iter().map(|item| item.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            return error("an item appears twice");
        }
        let parsed = |text: &str| decimal(text).ok_or(ParseError(format!("amount {text:?}")));
        let mut terms = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let (value, scale) = parsed(&item.amount)?;
            terms.push((item.direction == Direction::Deposit, value, scale));
        }
        let scale = terms.iter().map(|term| term.2).chain([parsed(&self.amount)?.1]).max();
        let scale = scale.unwrap_or(0);
        let at_scale = |(value, from): (i128, u32)| {
            10i128.checked_pow(scale - from).and_then(|factor| value.checked_mul(factor))
        };
        let mut net: i128 = 0;
        for (deposit, value, from) in terms {
            let value = at_scale((value, from)).ok_or(ParseError("amount out of range".into()))?;
            let signed = if deposit { value } else { -value };
            net = net.checked_add(signed).ok_or(ParseError("net out of range".into()))?;
        }
        let stated =
            at_scale(parsed(&self.amount)?).ok_or(ParseError("net out of range".into()))?;
        let direction = if net >= 0 { Direction::Deposit } else { Direction::Withdraw };
        if stated != net.abs() || direction != self.direction {
            return error(format!(
                "net {} {} does not match its items",
                self.direction.word(),
                self.amount
            ));
        }
        Ok(())
    }
}

/// A decimal amount as (value, number of decimals); `None` past 18 decimals or 30 digits.
fn decimal(text: &str) -> Option<(i128, u32)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.len() + fraction.len() > 30 || fraction.len() > 18 {
        return None;
    }
    let digits: String = [whole, fraction].concat();
    Some((digits.parse().ok()?, fraction.len() as u32))
}

/// A request from the client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    /// Settle an instruction.
    Settle(Instruction),
    /// Settle a batch of transactions with one payment of their net amount.
    Net(NetInstruction),
    /// List every confirmed instruction.
    Statement,
}

/// A line from the bank.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    /// `ACCEPTED <id>`: the instruction is being processed.
    Accepted(u128),
    /// `CONFIRMED <id>`: settled.
    Confirmed(u128),
    /// `FAILED <id> <reason>`: refused, final.
    Failed(u128, String),
    /// `BUSY <id>`: too many instructions in flight; send it again later.
    Busy(u128),
    /// `STATEMENT <count>`, then `count` lines `<id>,<amount>,<currency>,<direction>`.
    Statement(Vec<Instruction>),
    /// `ERROR <message>`: the request line was not understood.
    Error(String),
}

/// Why a line is not a valid request or reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn error<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// An instruction id: exactly 32 lower-case hex digits.
pub fn parse_id(text: &str) -> Result<u128, ParseError> {
    let hex = text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if text.len() != 32 || !hex {
        return error(format!("instruction id {text:?} is not 32 lower-case hex digits"));
    }
    u128::from_str_radix(text, 16).map_err(|_| ParseError(format!("instruction id {text:?}")))
}

/// The id as the protocol writes it.
pub fn format_id(id: u128) -> String {
    format!("{id:032x}")
}

/// A positive decimal amount: digits, optionally one `.` followed by digits.
fn valid_amount(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction) && text.len() <= 40
}

fn valid_currency(text: &str) -> bool {
    (3..=8).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn parse_direction(text: &str) -> Result<Direction, ParseError> {
    match text {
        "DEPOSIT" => Ok(Direction::Deposit),
        "WITHDRAW" => Ok(Direction::Withdraw),
        other => error(format!("direction {other:?} is not DEPOSIT or WITHDRAW")),
    }
}

fn instruction(
    id: &str,
    direction: &str,
    amount: &str,
    currency: &str,
) -> Result<Instruction, ParseError> {
    if !valid_amount(amount) {
        return error(format!("amount {amount:?} is not a positive decimal"));
    }
    if !valid_currency(currency) {
        return error(format!("currency {currency:?} is not 3..=8 upper-case letters or digits"));
    }
    Ok(Instruction {
        id: parse_id(id)?,
        direction: parse_direction(direction)?,
        amount: amount.to_string(),
        currency: currency.to_string(),
    })
}

/// Parses one request line (without its `\n`). A `NET` header returns the instruction
/// without its items and the number of item lines that follow (read them with `parse_item`).
pub fn parse_request(line: &str) -> Result<(Request, usize), ParseError> {
    if line.len() > LINE_LEN_MAX {
        return error("line too long");
    }
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["SETTLE", id, direction, amount, currency] => {
            Ok((Request::Settle(instruction(id, direction, amount, currency)?), 0))
        }
        ["NET", id, direction, amount, currency, count] => {
            let header = instruction(id, direction, amount, currency)?;
            let count = count
                .parse::<usize>()
                .ok()
                .filter(|count| (1..=NET_ITEMS_MAX).contains(count))
                .ok_or(ParseError(format!("item count {count:?} is not 1..={NET_ITEMS_MAX}")))?;
            let net = NetInstruction {
                id: header.id,
                direction: header.direction,
                amount: header.amount,
                currency: header.currency,
                items: Vec::with_capacity(count),
            };
            Ok((Request::Net(net), count))
        }
        ["STATEMENT"] => Ok((Request::Statement, 0)),
        _ => error(format!("unknown request {:?}", fields.first().copied().unwrap_or(""))),
    }
}

/// Parses one item line of a net instruction: `ITEM <id> <DEPOSIT|WITHDRAW> <amount>`.
pub fn parse_item(line: &str) -> Result<NetItem, ParseError> {
    if line.len() > LINE_LEN_MAX {
        return error("line too long");
    }
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["ITEM", id, direction, amount] if valid_amount(amount) => Ok(NetItem {
            id: parse_id(id)?,
            direction: parse_direction(direction)?,
            amount: amount.to_string(),
        }),
        ["ITEM", _, _, amount] => error(format!("amount {amount:?} is not a positive decimal")),
        _ => error("expected ITEM <id> <DEPOSIT|WITHDRAW> <amount>"),
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Settle(i) => write!(
                f,
                "SETTLE {} {} {} {}",
                format_id(i.id),
                i.direction.word(),
                i.amount,
                i.currency
            ),
            Request::Net(net) => {
                write!(
                    f,
                    "NET {} {} {} {} {}",
                    format_id(net.id),
                    net.direction.word(),
                    net.amount,
                    net.currency,
                    net.items.len()
                )?;
                for item in &net.items {
                    let (id, word) = (format_id(item.id), item.direction.word());
                    write!(f, "\nITEM {id} {word} {}", item.amount)?;
                }
                Ok(())
            }
            Request::Statement => f.write_str("STATEMENT"),
        }
    }
}

impl fmt::Display for Reply {
    /// The reply's lines, each ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Accepted(id) => writeln!(f, "ACCEPTED {}", format_id(*id)),
            Reply::Confirmed(id) => writeln!(f, "CONFIRMED {}", format_id(*id)),
            Reply::Failed(id, reason) => writeln!(f, "FAILED {} {reason}", format_id(*id)),
            Reply::Busy(id) => writeln!(f, "BUSY {}", format_id(*id)),
            Reply::Error(message) => writeln!(f, "ERROR {message}"),
            Reply::Statement(lines) => {
                writeln!(f, "STATEMENT {}", lines.len())?;
                for i in lines {
                    let id = format_id(i.id);
                    writeln!(f, "{id},{},{},{}", i.amount, i.currency, i.direction.word())?;
                }
                Ok(())
            }
        }
    }
}

/// Parses the first line of a reply. A `STATEMENT <count>` header returns an empty statement
/// and the count of lines that follow (read them with `parse_statement_line`).
pub fn parse_reply(line: &str) -> Result<(Reply, usize), ParseError> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let reply = match word {
        "ACCEPTED" => Reply::Accepted(parse_id(rest)?),
        "CONFIRMED" => Reply::Confirmed(parse_id(rest)?),
        "BUSY" => Reply::Busy(parse_id(rest)?),
        "FAILED" => {
            let (id, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            Reply::Failed(parse_id(id)?, reason.to_string())
        }
        "ERROR" => Reply::Error(rest.to_string()),
        "STATEMENT" => {
            let count = rest.parse::<usize>().map_err(|_| ParseError("statement count".into()))?;
            return Ok((Reply::Statement(Vec::new()), count));
        }
        other => return error(format!("unknown reply {other:?}")),
    };
    Ok((reply, 0))
}

/// Parses one statement line `<id>,<amount>,<currency>,<direction>`.
pub fn parse_statement_line(line: &str) -> Result<Instruction, ParseError> {
    let fields: Vec<&str> = line.split(',').collect();
    match fields.as_slice() {
        [id, amount, currency, direction] => instruction(id, direction, amount, currency),
        _ => error("statement line is not id,amount,currency,direction"),
    }
}
