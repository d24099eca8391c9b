//! Assertion density per crate: `assert!`, `assert_eq!`, `assert_ne!` and `debug_assert*!`
//! per 100 lines of non-test code (non-blank lines once comments are blanked; `#[cfg(test)]`
//! items and test module files left out; compile-time `const _: () = assert!(..)` counted).
//! A figure to watch, not a gate (TIGER_STYLE asks for two per function):
//! `cargo test -p tidy -- --nocapture assertion_density` prints the table.

use crate::source::{members, non_test_files, token_lines};

/// The macros counted, in the table's column order; `debug_assert` covers its three forms.
const MACROS: [(&str, &[&str]); 4] = [
    ("assert!", &["assert!"]),
    ("assert_eq!", &["assert_eq!"]),
    ("assert_ne!", &["assert_ne!"]),
    ("debug_assert*", &["debug_assert!", "debug_assert_eq!", "debug_assert_ne!"]),
];

/// One crate's counts.
struct Density {
    name: String,
    lines: usize,
    counts: [usize; 4],
}

fn densities() -> Vec<Density> {
    members()
        .into_iter()
        .map(|member| {
            let mut density = Density { name: member.name, lines: 0, counts: [0; 4] };
            for file in non_test_files(&member.dir) {
                density.lines += file.code.lines().filter(|line| !line.trim().is_empty()).count();
                for (count, (_, needles)) in density.counts.iter_mut().zip(MACROS) {
                    *count += needles
                        .iter()
                        .map(|needle| token_lines(&file.code, needle).len())
                        .sum::<usize>();
                }
            }
            density
        })
        .collect()
}

#[test]
fn assertion_density() {
    let per_100 = |count: usize, lines: usize| 100.0 * count as f64 / lines.max(1) as f64;
    let mut table = format!("{:<11} {:>7}", "crate", "lines");
    for (name, _) in MACROS {
        table += &format!(" {name:>14}");
    }
    table += &format!(" {:>14}\n", "all");
    for density in densities() {
        table += &format!("{:<11} {:>7}", density.name, density.lines);
        for count in density.counts {
            table += &format!(" {count:>6} {:>7.2}", per_100(count, density.lines));
        }
        let all: usize = density.counts.iter().sum();
        table += &format!(" {all:>6} {:>7.2}\n", per_100(all, density.lines));
    }
    println!("assertions per 100 non-test lines (count, then per 100 lines):\n{table}");
    assert!(table.lines().count() > 1, "no crates measured");
}
