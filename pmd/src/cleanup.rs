//! Removing what pollgate created even when pollgate cannot: a `kill -9`
//! runs no destructor. The engine starts a small reaper process and hands
//! it, through a pipe, a journal of every device and namespace it creates
//! and removes. When the pipe closes, the reaper removes whatever the
//! journal still lists. XDP programs need no reaper: their bpf_link dies
//! with the process.

use crate::netlink::Netlink;
use crate::netns::NetNs;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A device in the engine's namespace, by name and index (the index
    /// keeps the reaper from deleting a newer device of the same name).
    Device {
        name: String,
        ifindex: u32,
    },
    Netns {
        name: String,
    },
}

impl Resource {
    fn line(&self) -> String {
        match self {
            Resource::Device { name, ifindex } => format!("dev {name} {ifindex}"),
            Resource::Netns { name } => format!("netns {name}"),
        }
    }

    fn parse(s: &str) -> Option<Resource> {
        let mut w = s.split_whitespace();
        match (w.next()?, w.next()?, w.next()) {
            ("dev", name, Some(idx)) => Some(Resource::Device {
                name: name.to_string(),
                ifindex: idx.parse().ok()?,
            }),
            ("netns", name, None) => Some(Resource::Netns {
                name: name.to_string(),
            }),
            _ => None,
        }
    }
}

type Journal = Box<dyn Write + Send>;
static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

/// Sends every later `created`/`removed` to `w` (the reaper's stdin).
pub fn install(w: Journal) {
    if let Ok(mut j) = JOURNAL.lock() {
        *j = Some(w);
    }
}

fn write(line: String) {
    if let Ok(mut j) = JOURNAL.lock() {
        if let Some(w) = j.as_mut() {
            let _ = writeln!(w, "{line}").and_then(|_| w.flush());
        }
    }
}

pub fn created(r: &Resource) {
    write(format!("+{}", r.line()));
}

pub fn removed(r: &Resource) {
    write(format!("-{}", r.line()));
}

/// The reaper: reads the journal until EOF, then removes what is left,
/// devices before namespaces. Returns what it removed.
pub fn reap(input: impl BufRead) -> Vec<Resource> {
    let mut live = BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (add, rest) = match line.split_at_checked(1) {
            Some(("+", r)) => (true, r),
            Some(("-", r)) => (false, r),
            _ => continue,
        };
        if let Some(r) = Resource::parse(rest) {
            if add {
                live.insert(r);
            } else {
                live.remove(&r);
            }
        }
    }
    let mut done = Vec::new();
    // BTreeSet order puts every Device before every Netns.
    for r in live {
        let ok = match &r {
            Resource::Device { name, ifindex } => Netlink::open()
                .and_then(|mut nl| match nl.get_link(name)? {
                    Some(l) if l.index == *ifindex => nl.delete_link(l.index),
                    _ => Ok(()),
                })
                .is_ok(),
            Resource::Netns { name } => match NetNs::delete(name) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("pollgate reaper: cannot remove namespace {name}: {e}");
                    false
                }
            },
        };
        if ok {
            done.push(r);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_round_trip() {
        for r in [
            Resource::Device {
                name: "pg-c1".into(),
                ifindex: 42,
            },
            Resource::Netns {
                name: "pg-web".into(),
            },
        ] {
            assert_eq!(Resource::parse(&r.line()), Some(r));
        }
        assert_eq!(Resource::parse("dev x notanumber"), None);
        assert_eq!(Resource::parse("garbage"), None);
    }

    #[test]
    fn removed_entries_are_not_reaped() {
        // Nothing is left, so nothing is touched.
        let input = "+netns pg-none-such\n-netns pg-none-such\n+dev pgnone 99999\n-dev pgnone 99999\nnoise\n";
        assert!(reap(input.as_bytes()).is_empty());
    }
}
