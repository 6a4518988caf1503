//! What the kernel says about the CPU the engine runs on: the clock the
//! tools quote cycles with, and the L2 size the tables' warming
//! thresholds scale to (`pollgate_pipeline::cache_size`).

use std::path::Path;

/// The core clock as the kernel reports it (the first CPU's "cpu MHz").
pub fn mhz() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The size in bytes of the L2 cache (data or unified) of `core`, or of
/// CPU 0 for an unpinned worker; `None` where sysfs does not say.
pub fn l2_cache_bytes(core: Option<usize>) -> Option<usize> {
    let dir = format!("/sys/devices/system/cpu/cpu{}/cache", core.unwrap_or(0));
    l2_in(Path::new(&dir))
}

fn l2_in(dir: &Path) -> Option<usize> {
    let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(f)).ok();
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let p = e.path();
        let level = read(&p, "level")?;
        let kind = read(&p, "type")?;
        if level.trim() != "2" || kind.trim() == "Instruction" {
            return None;
        }
        parse_size(read(&p, "size")?.trim())
    })
}

/// sysfs's cache size: "2048K", "1M", or plain bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (n, unit) = match s.char_indices().last()? {
        (i, 'K') => (&s[..i], 1 << 10),
        (i, 'M') => (&s[..i], 1 << 20),
        _ => (s, 1),
    };
    n.parse::<usize>().ok().map(|n| n * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_sysfs_writes_them() {
        assert_eq!(parse_size("2048K"), Some(2 << 20));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn the_l2_entry_is_found_among_the_levels() {
        let dir = std::env::temp_dir().join(format!("pollgate-cache-{}", std::process::id()));
        for (i, level, kind, size) in [
            (0, "1", "Data", "48K"),
            (1, "1", "Instruction", "32K"),
            (2, "2", "Unified", "512K"),
            (3, "3", "Unified", "16384K"),
        ] {
            let d = dir.join(format!("index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        assert_eq!(l2_in(&dir), Some(512 << 10));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(l2_in(&dir), None);
    }
}
