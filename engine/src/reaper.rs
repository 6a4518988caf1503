//! The reaper process: a child `pollgate __reap` that outlives a killed
//! engine and removes the devices and namespaces the engine created (see
//! `pollgate_pmd::cleanup`). It ignores Ctrl-C so that a terminal's
//! SIGINT to the process group does not take it down with the engine.

use std::process::{Command, Stdio};

/// Starts the reaper and routes the creation journal to it.
pub fn spawn() -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("__reap")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("reaper has no stdin"))?;
    pollgate_pmd::cleanup::install(Box::new(stdin));
    Ok(())
}

/// The reaper's main: wait for the journal to close, then clean up.
pub fn run() {
    // A no-op handler: SIGINT/SIGTERM no longer end this process.
    let _ = ctrlc::set_handler(|| {});
    let removed = pollgate_pmd::cleanup::reap(std::io::stdin().lock());
    for r in removed {
        eprintln!("pollgate reaper: removed {r:?} left by a stopped engine");
    }
}
