//! `ledger-bank`: a bank-channel simulator for the settlement processor (DESIGN.md §4).
//!
//! It speaks a small line protocol over TCP (`BANK.md`): a client sends settlement
//! instructions, the bank acknowledges them and later answers each with a confirmation or a
//! failure, after a configurable latency, and sometimes never (a timeout), twice (a duplicate)
//! or out of order (latency jitter). Every decision comes from the seed and the instruction
//! id, so a run is reproducible and a re-sent instruction gets the same final answer.
//!
//! The simulator holds no money: it only remembers which instructions it confirmed, and lists
//! them on `STATEMENT` for reconciliation.

#![warn(missing_docs)]

pub mod fuzz;
pub mod protocol;
pub mod server;
pub mod sim;

#[cfg(test)]
mod tests;
