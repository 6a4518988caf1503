//! The running engine, over its control socket: one request per
//! connection, one line, as `pollgate ctl` speaks it.

use rscni_plugin::error::Error;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends `request`; the reply, or the engine's `error: …` as `Err(Ok)`.
/// `Err(Err)` when the engine cannot be reached at all.
pub fn request(sock: &Path, request: &str) -> Result<String, Result<String, Error>> {
    let unreachable = |e: std::io::Error| {
        Err(Error::TryAgainLater(format!(
            "pollgate is not running or not answering on {}: {e} (start it with pollgate run --config FILE)",
            sock.display()
        )))
    };
    let mut s = UnixStream::connect(sock).map_err(unreachable)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(unreachable)?;
    writeln!(s, "{request}").map_err(unreachable)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(unreachable)?;
    match out.strip_prefix("error: ") {
        Some(e) => Err(Ok(e.trim_end().to_string())),
        None => Ok(out),
    }
}

/// Whether the engine answers at all.
pub fn reachable(sock: &Path) -> Result<(), Error> {
    match request(sock, "show ports") {
        Ok(_) | Err(Ok(_)) => Ok(()),
        Err(Err(e)) => Err(e),
    }
}

fn json(sock: &Path, req: &str) -> Result<serde_json::Value, Error> {
    let text = request(sock, req).map_err(|e| match e {
        Ok(m) => Error::Custom(101, format!("pollgate refused {req}"), m),
        Err(e) => e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::FailedToDecode(format!("{req}: {e}")))
}

/// The names of the engine's ports.
pub fn ports(sock: &Path) -> Result<Vec<String>, Error> {
    let v = json(sock, "show ports --json")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The ports that are members of `bridge` (this network's attachments
/// among them; another network's bridge is not this network's to
/// collect).
pub fn members(sock: &Path, bridge: &str) -> Result<Vec<String>, Error> {
    let v = json(sock, "show bridges --json")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["name"] == bridge)
        .flat_map(|b| b["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["port"].as_str().map(str::to_string))
        .collect())
}

/// The ports the engine's NAT publishes: (protocol, public
/// `ADDRESS:PORT`, inside `ADDRESS:PORT`), as `show nat --json` lists
/// them.
pub fn published(sock: &Path) -> Result<Vec<(String, String, String)>, Error> {
    let v = json(sock, "show nat --json")?;
    let field = |p: &serde_json::Value, k: &str| p[k].as_str().unwrap_or_default().to_string();
    Ok(v["publish"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (field(p, "proto"), field(p, "public"), field(p, "inside")))
        .collect())
}
