//! What `memory_limiter` measures: the allocator's heap (`measure: heap`, jemalloc's
//! `stats.allocated`), the cgroup v2 `memory.current` (`measure: cgroup`) or the process RSS
//! (`measure: rss`); and the total memory `limit_percentage` is relative to (the cgroup v2
//! `memory.max` when one is set, else `/proc/meminfo`'s `MemTotal`, the lower of the two).

use std::path::{Path, PathBuf};

/// The process resident set size, from `/proc/self/statm`.
pub fn process_rss_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
}

/// Bytes the global allocator has handed out and not yet freed (jemalloc's `stats.allocated`,
/// refreshed by advancing its `epoch`); `None` when the crate is built without `jemalloc`.
pub fn heap_allocated_bytes() -> Option<u64> {
    crate::alloc::allocated_bytes()
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// A cgroup v2 `memory.max`: `Some(None)` for `max` (no limit), `Some(Some(bytes))` for a number.
pub fn parse_memory_max(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse::<u64>().ok().map(Some),
    }
}

/// The process's cgroup v2 directory: the `0::/path` line of `/proc/self/cgroup` under the
/// unified hierarchy's mount point (`root`, normally `/sys/fs/cgroup`). `None` on cgroup v1 or
/// when the directory has no memory controller files.
pub fn cgroup_v2_dir(proc_self_cgroup: &str, root: &Path) -> Option<PathBuf> {
    let rel = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .trim_start_matches('/');
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    dir.join("memory.current").is_file().then_some(dir)
}

/// A cgroup v2 directory's memory files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub dir: PathBuf,
}

impl Cgroup {
    /// This process's cgroup (v2 only).
    pub fn current() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        cgroup_v2_dir(&text, Path::new("/sys/fs/cgroup")).map(|dir| Self { dir })
    }

    /// `memory.current`: every byte charged to the cgroup (anonymous memory and page cache).
    pub fn memory_current(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("memory.current"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `memory.max`: `Some(None)` when unlimited; `None` when the file is missing (the root cgroup).
    pub fn memory_max(&self) -> Option<Option<u64>> {
        parse_memory_max(&std::fs::read_to_string(self.dir.join("memory.max")).ok()?)
    }
}

/// The memory `limit_percentage` is a percentage of, with where it came from: the cgroup v2
/// `memory.max` when set (and below the machine's total), else `MemTotal` (as contrib does).
pub fn total_memory(cgroup: Option<&Cgroup>, meminfo: Option<&str>) -> Option<(u64, &'static str)> {
    let system = meminfo.and_then(parse_meminfo_total);
    let limit = cgroup.and_then(|c| c.memory_max()).flatten();
    match (limit, system) {
        (Some(l), Some(s)) if l < s => Some((l, "cgroup memory.max")),
        (Some(l), None) => Some((l, "cgroup memory.max")),
        (_, Some(s)) => Some((s, "/proc/meminfo MemTotal")),
        (None, None) => None,
    }
}

/// [`total_memory`] for this process.
pub fn total_memory_bytes() -> Option<(u64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    total_memory(Cgroup::current().as_ref(), meminfo.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgroup");

    fn fixture(name: &str) -> Cgroup {
        Cgroup {
            dir: Path::new(FIXTURES).join(name),
        }
    }

    #[test]
    fn memory_max_is_max_or_a_number() {
        assert_eq!(parse_memory_max("max\n"), Some(None));
        assert_eq!(parse_memory_max("536870912\n"), Some(Some(536_870_912)));
        assert_eq!(parse_memory_max("lots"), None);
        assert_eq!(fixture("limited").memory_max(), Some(Some(536_870_912)));
        assert_eq!(fixture("unlimited").memory_max(), Some(None));
        assert_eq!(fixture("limited").memory_current(), Some(104_857_600));
        assert_eq!(fixture("missing").memory_max(), None);
    }

    #[test]
    fn cgroup_dir_from_proc_self_cgroup() {
        let root = Path::new(FIXTURES);
        assert_eq!(
            cgroup_v2_dir("0::/limited\n", root),
            Some(root.join("limited"))
        );
        // cgroup v1 lines only: no unified hierarchy.
        assert_eq!(
            cgroup_v2_dir("12:memory:/docker/abc\n1:name=systemd:/x\n", root),
            None
        );
        // A path without memory.current (no memory controller there).
        assert_eq!(cgroup_v2_dir("0::/nope\n", root), None);
    }

    #[test]
    fn total_is_the_cgroup_limit_when_set_and_lower() {
        let meminfo = "MemTotal:        8000000 kB\nMemFree:  1 kB\n";
        let system = 8_000_000 * 1024;
        assert_eq!(
            total_memory(Some(&fixture("limited")), Some(meminfo)),
            Some((536_870_912, "cgroup memory.max"))
        );
        assert_eq!(
            total_memory(Some(&fixture("unlimited")), Some(meminfo)),
            Some((system, "/proc/meminfo MemTotal"))
        );
        assert_eq!(
            total_memory(None, Some(meminfo)),
            Some((system, "/proc/meminfo MemTotal"))
        );
        // A cgroup limit above the machine's memory is no limit.
        assert_eq!(
            total_memory(Some(&fixture("limited")), Some("MemTotal: 1024 kB\n")),
            Some((1024 * 1024, "/proc/meminfo MemTotal"))
        );
        assert_eq!(total_memory(None, None), None);
    }
}
