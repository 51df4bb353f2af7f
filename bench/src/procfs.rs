//! CPU time and memory of a process, from `/proc` (Linux).

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux architecture the project targets.
pub const CLK_TCK: f64 = 100.0;

/// User plus system CPU seconds of every thread of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_cpu_seconds(&text).ok_or_else(|| format!("{path}: unexpected content"))
}

/// Fields 14 (utime) and 15 (stime) of `/proc/<pid>/stat`, counted after the command name,
/// which may itself hold spaces and parentheses.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

/// A `Vm*` line of `/proc/<pid>/status` in MiB, e.g. `VmHWM` (peak resident set) or `VmRSS`.
pub fn memory_mib(pid: u32, key: &str) -> Result<f64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_status_kib(&text, key)
        .map(|kib| kib as f64 / 1024.0)
        .ok_or_else(|| format!("{path}: no {key} line"))
}

/// The kB value of `key` in `/proc/<pid>/status` text.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// CPU seconds of the whole host so far, from the first line of `/proc/stat`: (busy, all
/// cores' total), where busy leaves out idle and iowait.
pub fn host_cpu_seconds() -> Result<(f64, f64), String> {
    let text = std::fs::read_to_string("/proc/stat")
        .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
    parse_host_cpu(&text).ok_or_else(|| "/proc/stat: unexpected content".to_owned())
}

pub fn parse_host_cpu(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(((total - idle) as f64 / CLK_TCK, total as f64 / CLK_TCK))
}

/// The 1-minute load average.
pub fn loadavg() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| format!("cannot read /proc/loadavg: {e}"))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "/proc/loadavg: unexpected content".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fields_after_an_odd_command_name() {
        let stat =
            "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 4 0 100";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn status_lines() {
        let status = "Name:\tx\nVmHWM:\t  81920 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(81920));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn host_cpu_line() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(parse_host_cpu(stat), Some((1.5, 10.0)));
        assert_eq!(parse_host_cpu("intr 1 2 3"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(memory_mib(pid, "VmHWM").unwrap() > 0.0);
        let (busy, total) = host_cpu_seconds().unwrap();
        assert!(busy <= total);
        assert!(loadavg().unwrap() >= 0.0);
    }
}
