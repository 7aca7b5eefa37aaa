//! The standard `process_*` metrics, read from `/proc/self` (Linux; elsewhere none are
//! reported). Read at scrape time only, so serving requests costs nothing.

/// Linux reports CPU times in `/proc` in USER_HZ, which is 100 on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// When the process started (Unix seconds).
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads the current process's statistics; `None` where `/proc` is not available.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let mut stats = parse(&stat, &status, &boot, &limits)?;
        // The directory listing held one descriptor of its own.
        stats.open_fds = open_fds.saturating_sub(1);
        Some(stats)
    }

    /// Appends the `process_*` families in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let mut families = vec![
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                self.cpu_seconds.to_string(),
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes.to_string(),
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                self.virtual_bytes.to_string(),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                self.start_time_seconds.to_string(),
            ),
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                self.open_fds.to_string(),
            ),
        ];
        if let Some(max) = self.max_fds {
            families.push((
                "process_max_fds",
                "gauge",
                "Most open file descriptors allowed (soft limit).",
                max.to_string(),
            ));
        }
        for (name, kind, help, value) in families {
            super::write_family(out, name, kind, help, &[("", value)]);
        }
    }
}

/// Parses `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and `/proc/self/limits`.
fn parse(stat: &str, status: &str, boot: &str, limits: &str) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields
    // from after its closing parenthesis, where field 3 (state) comes first.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let boot_time: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let resident_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        resident_bytes: resident_kib * 1024,
        virtual_bytes: field(23)? as u64,
        start_time_seconds: boot_time + field(22)? / TICKS_PER_SECOND,
        open_fds: 0,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed_including_a_name_with_spaces() {
        let stat = "4242 (moneykit auth) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    8 0 12345 1048576000 5000 18446744073709551615";
        let status = "Name:\tmoneykit-auth\nVmRSS:\t   20480 kB\nThreads:\t8\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let stats = parse(stat, status, boot, limits).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.resident_bytes, 20 * 1024 * 1024);
        assert_eq!(stats.virtual_bytes, 1_048_576_000);
        assert_eq!(stats.start_time_seconds, 1_700_000_123.45);
        assert_eq!(stats.max_fds, Some(1024));
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if cfg!(target_os = "linux") {
            let stats = ProcessStats::read().expect("/proc is readable");
            assert!(stats.resident_bytes > 0 && stats.open_fds > 0);
            let mut out = String::new();
            stats.render(&mut out);
            assert!(out.contains("\nprocess_open_fds "), "{out}");
        }
    }
}
