//! The IPAM plugin the configuration names (`ipam.type`), executed from
//! `CNI_PATH` as the spec's delegation describes: same environment but
//! `CNI_COMMAND`, the network configuration on stdin, its result (or
//! error) on stdout.

use rscni_plugin::error::Error;
use rscni_plugin::types::{Args, CNIResult, ErrorResult};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn plugin(args: &Args) -> Result<PathBuf, Error> {
    let ty = &args
        .config()
        .ipam
        .as_ref()
        .ok_or_else(|| Error::InvalidNetworkConfig("no ipam section".into()))?
        .r#type;
    if ty.is_empty() || ty.contains('/') {
        return Err(Error::InvalidNetworkConfig(format!(
            "ipam.type {ty:?} is not a plugin name"
        )));
    }
    args.path()
        .iter()
        .map(|d| d.join(ty))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::PluginNotAvailable(format!(
                "IPAM plugin {ty:?} is not in CNI_PATH ({})",
                args.path()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// The versions the IPAM plugin says it speaks (`CNI_COMMAND=VERSION`).
fn versions(exe: &std::path::Path, ours: &str) -> Vec<String> {
    let out = Command::new(exe)
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                let _ = write!(i, "{{\"cniVersion\": \"{ours}\"}}");
            }
            c.wait_with_output()
        });
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| {
            v["supportedVersions"].as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Runs the IPAM plugin with `command` ("ADD", "DEL", "CHECK", "GC").
/// Given a 1.1.0 configuration, an IPAM plugin that speaks only up to
/// 1.0.0 (Debian 12's host-local) gets it as 1.0.0: its results read
/// the same, and GC, the one 1.1 command, is not delegated to it.
pub fn delegate(args: &Args, command: &str) -> Result<Option<CNIResult>, Error> {
    let exe = plugin(args)?;
    let mut conf = serde_json::to_value(args.config())
        .map_err(|e| Error::FailedToDecode(format!("network configuration: {e}")))?;
    let ours = args.config().cni_version.clone();
    if ours != "1.0.0" && ours.starts_with("1.") {
        let theirs = versions(&exe, &ours);
        if !theirs.is_empty() && !theirs.contains(&ours) {
            if matches!(command, "GC" | "STATUS") {
                return Ok(None);
            }
            if theirs.iter().any(|v| v == "1.0.0") {
                conf["cniVersion"] = "1.0.0".into();
            }
            // Otherwise it refuses, with its own error, which is passed on.
        }
    }
    let conf = serde_json::to_vec(&conf)
        .map_err(|e| Error::FailedToDecode(format!("network configuration: {e}")))?;
    let mut child = Command::new(&exe)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::IOFailure(format!("{}: {e}", exe.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits before reading (a refusal of its
        // environment) closes the pipe: its exit status and its error
        // on stdout say why, which beats a bare "broken pipe".
        match stdin.write_all(&conf) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Error::IOFailure(format!("{}: {e}", exe.display())));
            }
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::IOFailure(format!("{}: {e}", exe.display())))?;
    if !out.status.success() {
        return Err(match serde_json::from_slice::<ErrorResult>(&out.stdout) {
            Ok(e) => Error::from(e),
            Err(_) => Error::Custom(
                102,
                format!("IPAM plugin {} failed", exe.display()),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ),
        });
    }
    if command != "ADD" {
        return Ok(None);
    }
    serde_json::from_slice::<CNIResult>(&out.stdout)
        .map(Some)
        .map_err(|e| Error::FailedToDecode(format!("{}'s result: {e}", exe.display())))
}
