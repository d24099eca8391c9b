//! The checks of the bank protocol's fuzz target (`fuzz/fuzz_targets/bank_lines.rs`), here so
//! that the unit tests run them on stable. Arbitrary bytes, split into lines, go through every
//! parser of BANK.md's line protocol: nothing may panic, and what parses prints back (Display)
//! to a line that parses to the same value.

use crate::protocol::{
    parse_item, parse_reply, parse_request, parse_statement_line, Direction, NetInstruction,
    NetItem, Reply, Request,
};

/// Runs the checks on every line of `data` (see the module docs).
pub fn parse_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok((request, count)) = parse_request(line) {
            let printed = match &request {
                // A net header prints its items after it: print it with `count` of them.
                Request::Net(net) => {
                    let mut full = net.clone();
                    full.items = vec![sample_item(); count];
                    Request::Net(full).to_string()
                }
                _ => request.to_string(),
            };
            let mut lines = printed.split('\n');
            let header = lines.next().unwrap_or("");
            assert_eq!(parse_request(header), Ok((request, count)), "{printed:?}");
            for item in lines {
                assert_eq!(parse_item(item), Ok(sample_item()), "{printed:?}");
            }
        }
        if let Ok(item) = parse_item(line) {
            let net = NetInstruction {
                id: 1,
                direction: item.direction,
                amount: item.amount.clone(),
                currency: "USD".into(),
                items: vec![item.clone()],
            };
            let printed = Request::Net(net).to_string();
            let printed = printed.split('\n').nth(1).unwrap_or("");
            assert_eq!(parse_item(printed), Ok(item), "{printed:?}");
        }
        if let Ok((reply, count)) = parse_reply(line) {
            let printed = match &reply {
                // A statement's header counts the lines that follow it.
                Reply::Statement(lines) if lines.is_empty() => format!("STATEMENT {count}"),
                _ => reply.to_string().trim_end_matches('\n').to_owned(),
            };
            assert_eq!(parse_reply(&printed), Ok((reply, count)), "{printed:?}");
        }
        if let Ok(instruction) = parse_statement_line(line) {
            let printed = Reply::Statement(vec![instruction.clone()]).to_string();
            let printed = printed.lines().nth(1).unwrap_or("");
            assert_eq!(parse_statement_line(printed), Ok(instruction), "{printed:?}");
        }
    }
}

/// An item line that parses, for printing net headers with their items.
fn sample_item() -> NetItem {
    NetItem { id: 7, direction: Direction::Deposit, amount: "1.50".into() }
}

#[cfg(test)]
mod tests {
    use super::parse_lines;

    /// A smoke on stable: BANK.md's lines with every byte changed a few ways, and random text.
    #[test]
    fn changed_lines_never_panic_and_print_back() {
        let lines = [
            "SETTLE 0000000000000000000000000000002a DEPOSIT 12.50 USD",
            "NET 00000000000000000000000000000007 WITHDRAW 3.00 EUR 2",
            "ITEM 00000000000000000000000000000001 DEPOSIT 1.50",
            "STATEMENT",
            "ACCEPTED 0000000000000000000000000000002a",
            "FAILED 0000000000000000000000000000002a insufficient funds",
            "STATEMENT 2",
            "0000000000000000000000000000002a,12.50,USD,DEPOSIT",
            "ERROR unknown request",
        ];
        for line in lines {
            let bytes = line.as_bytes();
            parse_lines(bytes);
            for at in 0..bytes.len() {
                for value in [b' ', b'0', b'9', b'a', b'-', b'.', b',', 0xff, bytes[at] ^ 0x20] {
                    let mut changed = bytes.to_vec();
                    changed[at] = value;
                    parse_lines(&changed);
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| b" 0123456789abcdefACEDNPRSTWIT.,\n"[(state as usize >> (i % 50)) % 32])
                .collect();
            parse_lines(&bytes);
        }
    }
}
