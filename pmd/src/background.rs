//! Threads that do the control plane's long work (compiling a 10 K-rule
//! ACL takes seconds) beside threads that must answer at once. On a host
//! with few cores they share one (the workers hold the others), and a
//! `ctl acl add` that found the compile on its core waited for the
//! scheduler: edits' p99 went from 0.3 to 0.7–2.3 ms while compiles ran.

use std::io;

/// Gives the calling thread the lowest scheduling priority (nice 19), so
/// that threads at the default priority run first on a shared core.
pub fn yield_to_others() -> io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority reads its three integer arguments only; a
    // thread id with PRIO_PROCESS names that one thread on Linux.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    /// Thread `tid`'s nice value, from its stat (field 19, counted after
    /// the parenthesised name).
    fn nice(tid: libc::pid_t) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_calling_thread_and_only_it_goes_to_nice_19() {
        // SAFETY: gettid takes no arguments and cannot fail.
        let me = unsafe { libc::gettid() };
        let before = nice(me);
        std::thread::spawn(|| {
            super::yield_to_others().unwrap();
            // SAFETY: as above.
            assert_eq!(nice(unsafe { libc::gettid() }), 19);
        })
        .join()
        .unwrap();
        assert_eq!(nice(me), before, "the caller's thread only");
    }
}
