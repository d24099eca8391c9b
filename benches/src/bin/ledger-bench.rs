//! `ledger-bench`: the load and latency harness. The code lives in the library
//! (`benches::bench`: flags, the TCP and embedded drivers, verification, report); this binary
//! only calls it. See the library module for what it measures and how.

fn main() -> std::process::ExitCode {
    benches::bench::main()
}
