//! What the benches read of a process from Linux's `/proc`: CPU time (utime + stime, in
//! USER_HZ ticks) and the resident-set lines of `status`. One reader, so `bench-collector` and
//! `bench-stack` count CPU and memory the same way.

/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
pub const CLOCK_TICKS: f64 = 100.0;

/// utime + stime from the text of a `stat` file (a process's, or one thread's).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the fields after its last
    // closing parenthesis are fixed: utime is the 14th field of the line, stime the 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// utime + stime of a process: every thread it ever ran, in ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 1 1 1";
        assert_eq!(stat_ticks(stat), Some(325));
        assert_eq!(stat_ticks("garbage"), None);
        assert!(process_ticks(std::process::id()).is_some());
        assert!(status_kib(std::process::id(), "VmRSS").unwrap() > 0);
    }
}
