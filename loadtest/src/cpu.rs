//! CPU sets for pinning, and CPU time read from `/proc` (client, gateway and baselines are
//! separate processes, so each one's CPU per request is its own).

use std::time::Duration;

/// An ordered list of CPU numbers: `0`, `0-3`, `0+2`, `1,3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

impl CpuSet {
    pub fn parse(text: &str) -> Result<Self, String> {
        intentgate_shared::cpu_list::parse(text, 1024)
            .map(Self)
            .ok_or_else(|| format!("not a CPU list: {text:?} (e.g. 0, 0-1, 0+2)"))
    }

    pub fn single(cpu: usize) -> Self {
        Self(vec![cpu])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The CPU for the `i`-th thread (threads beyond the set wrap around).
    pub fn nth(&self, i: usize) -> usize {
        self.0.get(i % self.0.len().max(1)).copied().unwrap_or(0)
    }

    /// The form `taskset -c` and our own `--cpus` accept.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// User plus system CPU time of a process so far (`None` once it is gone).
pub fn process_time(pid: u32) -> Option<Duration> {
    stat_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process's user plus system CPU time so far.
pub fn own_time() -> Option<Duration> {
    stat_time(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// utime + stime of a `/proc/<pid>/stat` line, in USER_HZ ticks (100 per second on Linux).
fn stat_time(stat: &str) -> Option<Duration> {
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The pids of a process's children (`taskset`/`timeout` wrappers exec or fork the gateway).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_bad_ones_are_refused() {
        assert_eq!(CpuSet::parse("0-2").unwrap().to_list(), "0,1,2");
        assert_eq!(CpuSet::parse("1+3").unwrap().to_list(), "1,3");
        assert_eq!(CpuSet::parse("1").unwrap().nth(5), 1);
        for bad in ["", "a", "2-1", "0-", "-1", "99999"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stat_lines_with_odd_command_names_are_read() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(stat_time(line), Some(Duration::from_millis(2800)));
        assert!(own_time().is_some());
    }
}
