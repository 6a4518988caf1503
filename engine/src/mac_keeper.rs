//! The MAC table's keeper: a thread that grows the table as it fills
//! (workers only learn into it; they neither allocate nor wait).

use pollgate_pipeline::mac_table::MacTable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the keeper looks. A generation has room from a quarter of
/// its slots to about three quarters; new MACs arriving faster than that
/// room lasts overflow (counted, their frames flooded) until the next
/// look, and are learnt from their next frames.
const LOOK_EVERY: Duration = Duration::from_millis(2);

/// Starts the keeper; it stops when `stop` is set.
pub fn spawn(table: Arc<MacTable>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pg-mac-keeper".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                while table.grow_if_needed() {}
                std::thread::sleep(LOOK_EVERY);
            }
        })
}
