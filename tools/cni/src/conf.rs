//! pollgate's own keys in a CNI network configuration, beside `type` and
//! `ipam`:
//!
//! ```json
//! { "type": "pollgate-cni", "ctlSocket": "/run/pollgate.sock",
//!   "bridge": "br0", "vid": 10, "mtu": 1500, "natOut": "wan",
//!   "capabilities": { "portMappings": true },
//!   "ipam": { "type": "host-local", ... } }
//! ```

use rscni_plugin::error::Error;
use rscni_plugin::types::NetConf;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollgateConf {
    /// The engine's control socket.
    #[serde(default = "default_socket")]
    pub ctl_socket: PathBuf,
    /// The bridge domain the container joins.
    pub bridge: String,
    /// On a trunk bridge member: the VID (as `bridge member add … vid=`).
    pub vid: Option<u16>,
    /// MTU of both ends of the veth pair.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// The worker that serves the container's port (default: the one
    /// serving the fewest ports).
    pub worker: Option<usize>,
    /// With the `portMappings` capability: the bridge whose `[[nat]]`
    /// rule publishes the container's ports, where the engine has
    /// several.
    pub nat_out: Option<String>,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/pollgate.sock")
}

fn default_mtu() -> u32 {
    1500
}

/// Keys the CNI spec or the runtime put in every configuration, which
/// are not pollgate's.
const SPEC_KEYS: [&str; 2] = ["cniVersions", "disableCheck"];

impl PollgateConf {
    pub fn of(conf: &NetConf) -> Result<PollgateConf, Error> {
        let mut custom = conf.custom.clone();
        for k in SPEC_KEYS {
            custom.remove(k);
        }
        let v = serde_json::Value::Object(custom.into_iter().collect());
        let c: PollgateConf = serde_json::from_value(v)
            .map_err(|e| Error::InvalidNetworkConfig(format!("pollgate-cni: {e}")))?;
        if !(68..=9216).contains(&c.mtu) {
            return Err(Error::InvalidNetworkConfig(format!(
                "pollgate-cni: mtu {} is out of range: 68..=9216",
                c.mtu
            )));
        }
        if conf.ipam.is_none() {
            return Err(Error::InvalidNetworkConfig(
                "pollgate-cni: no ipam section: name the IPAM plugin (host-local) that hands out the container's addresses".into(),
            ));
        }
        Ok(c)
    }
}
