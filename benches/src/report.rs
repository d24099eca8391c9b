//! Measuring the measurer: CPU time of this process and of its threads (`getrusage`), of
//! another process's threads (`/proc/PID/task/*/stat`), and the classic HdrHistogram
//! percentile text format (`.hgrm`) for latency distributions.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

/// User + system CPU time of the whole process (`RUSAGE_SELF`).
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// User + system CPU time of the calling thread (`RUSAGE_THREAD`).
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: `getrusage` writes a `rusage` into the zeroed struct we own; it has no other
    // effect. On failure (not possible for these `who` values) the struct stays zero.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time of the whole machine so far, from the first line of `/proc/stat`: (busy, total),
/// where busy is everything but idle and iowait. Differences of two readings say how busy the
/// machine was in between, including processes this one cannot see (other containers).
pub fn machine_cpu() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_stat(&stat)
}

fn parse_machine_stat(stat: &str) -> Option<(Duration, Duration)> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = fields.take(8).map(|field| field.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else { return None };
    let busy = user + nice + system + irq + softirq + steal;
    let total = busy + idle + iowait;
    let time =
        |ticks: u64| Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / ticks_per_sec);
    Some((time(busy), time(total)))
}

/// CPU time per thread name of process `pid`, from `/proc/PID/task/*/stat` (threads that
/// share a name are added up). `None` if the process is gone.
pub fn threads_cpu(pid: u32) -> Option<BTreeMap<String, Duration>> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut by_name = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((name, ticks)) = parse_stat(&stat) else { continue };
        let time = Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / ticks_per_sec);
        *by_name.entry(name).or_insert(Duration::ZERO) += time;
    }
    Some(by_name)
}

/// The thread name and `utime + stime` (clock ticks) from one `/proc/*/stat` line. The name
/// is in parentheses and may itself contain spaces or parentheses: it ends at the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After the name: state (field 3), ..., utime (field 14), stime (field 15).
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// The CPU each thread name used between two [`threads_cpu`] readings, largest first.
pub fn threads_cpu_delta(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
) -> Vec<(String, Duration)> {
    let mut delta: Vec<(String, Duration)> = after
        .iter()
        .map(|(name, &time)| {
            let earlier = before.get(name).copied().unwrap_or(Duration::ZERO);
            (name.clone(), time.saturating_sub(earlier))
        })
        .filter(|(_, time)| !time.is_zero())
        .collect();
    delta.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    delta
}

/// Writes `histogram` in the classic HdrHistogram percentile format (what Java's
/// `outputPercentileDistribution(out, 5, 1.0)` prints and the HdrHistogram plotters read):
/// value, percentile, total count, 1/(1−percentile), then mean, deviation, max and count.
/// Values are written in the histogram's unit.
pub fn write_hgrm(histogram: &Histogram<u64>, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    writeln!(out)?;
    let mut total = 0u64;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let quantile = step.quantile_iterated_to();
        let value = step.value_iterated_to() as f64;
        if quantile < 1.0 {
            let inverse = 1.0 / (1.0 - quantile);
            writeln!(out, "{value:12.3} {quantile:14.12} {total:10} {inverse:14.2}")?;
        } else {
            writeln!(out, "{value:12.3} {quantile:14.12} {total:10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean(),
        histogram.stdev()
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64,
        histogram.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        (2 * 10u64.pow(u32::from(histogram.sigfig()))).next_power_of_two()
    )
}

#[cfg(test)]
mod tests;
