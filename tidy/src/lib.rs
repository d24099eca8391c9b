//! `tidy`: the workspace's architecture and style rules as tests, after rust-analyzer's
//! `xtask/src/tidy.rs`. Nothing here runs outside `cargo test -p tidy`:
//!
//! - `deps`: ARCHITECTURE.md's crate table against `cargo metadata` (direct dependencies per
//!   row, and a few transitive absences);
//! - `cycles`: no new cycles between a crate's top-level modules;
//! - `style`: no clock, randomness or I/O in `engine/src`, no `unbounded(`, no `.unwrap()` in
//!   decoders, a `//!` at the top of every file;
//! - `density`: assertions per 100 lines of non-test code, per crate (printed with
//!   `cargo test -p tidy -- --nocapture assertion_density`).
//!
//! Each rule that today's code breaks has an explicit allow-list next to it; an entry that no
//! longer matches anything fails too, so the lists only shrink.

#[cfg(test)]
mod cycles;
#[cfg(test)]
mod density;
#[cfg(test)]
mod deps;
#[cfg(test)]
mod source;
#[cfg(test)]
mod style;
