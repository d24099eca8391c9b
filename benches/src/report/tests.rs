//! Tests of the CPU readings (`/proc` stat lines, per-thread deltas) and of the `.hgrm` format.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{parse_machine_stat, parse_stat, threads_cpu_delta, write_hgrm};

#[test]
fn stat_line_with_odd_thread_name() {
    let stat = "4242 (ledger (w) x) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 1 0";
    assert_eq!(parse_stat(stat), Some(("ledger (w) x".to_string(), 150)));
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn delta_sorted_largest_first() {
    let secs = Duration::from_secs;
    let before = BTreeMap::from([("a".to_string(), secs(1)), ("b".to_string(), secs(1))]);
    let after = BTreeMap::from([
        ("a".to_string(), secs(2)),
        ("b".to_string(), secs(4)),
        ("c".to_string(), secs(1)),
    ]);
    let names: Vec<_> =
        threads_cpu_delta(&before, &after).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["b", "a", "c"]);
}

#[test]
fn hgrm_has_header_rows_and_footer() {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for value in 1..=1000 {
        histogram.record(value).expect("in range");
    }
    let mut out = Vec::new();
    write_hgrm(&histogram, &mut out).expect("a Vec takes everything");
    let text = String::from_utf8(out).expect("ASCII");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("Percentile"));
    assert!(lines.iter().any(|line| line.starts_with("#[Max     =     1000.000,")), "{text}");
    let last_row = lines.iter().rev().find(|line| !line.starts_with('#')).expect("rows");
    assert!(last_row.contains("1.000000000000"), "{last_row}");
    assert!(last_row.trim_end().ends_with("1000"), "{last_row}");
}

#[test]
fn machine_stat_busy_and_total() {
    let (busy, total) =
        parse_machine_stat("cpu  100 0 50 800 30 5 5 10 0 0\ncpu0 1 2 3\n").expect("a cpu line");
    // busy: user + system + irq + softirq + steal = 170 ticks of 1000.
    assert_eq!(busy.as_nanos() * 1000 / total.as_nanos(), 170);
    assert!(parse_machine_stat("intr 1 2 3").is_none());
}
