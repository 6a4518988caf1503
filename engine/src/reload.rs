//! `pollgate ctl reload`: reads the config file again and makes the
//! running topology what it says, through the one change model
//! (`change::plan`, `Control::apply`), as `ctl` verbs do. Ports that
//! `ctl port add` attached at run time (containers) are not in the file:
//! they are added to what the file says, so a reload keeps them. What
//! only a restart can change is refused, naming the field, and nothing
//! changes.

use crate::change;
use crate::config;
use crate::ctl::CtlState;
use std::path::PathBuf;

pub struct Reloader {
    path: PathBuf,
}

impl Reloader {
    pub fn new(path: PathBuf) -> Self {
        Reloader { path }
    }

    pub fn reload(&self, state: &CtlState) -> Result<String, String> {
        let refused = |e: String| format!("reload refused: {e}");
        let file = self.path.display().to_string();
        let src = std::fs::read_to_string(&self.path)
            .map_err(|e| refused(format!("{file}: cannot read: {e}")))?;
        let base = self.path.parent().map(PathBuf::from).unwrap_or_default();
        let _one = state.changing.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted = config::read(&file, &src).map_err(|e| refused(e.to_string()))?;
        let current = state.control.topology();
        let kept = crate::topology_ctl::with_runtime_ports(state, &mut wanted);
        let desired = change::desired(wanted, &current, &file, &src, &base)
            .map_err(|e| refused(e.to_string()))?;
        let done = state
            .control
            .apply(desired)
            .map_err(|e| refused(e.to_string()))?;
        let done = match done.strip_prefix("applied") {
            Some(rest) => format!("reload applied{rest}"),
            None => format!("reload: {done}"),
        };
        Ok(match kept {
            0 => done,
            n => format!("{}; {n} ports attached at run time kept\n", done.trim_end()),
        })
    }
}
