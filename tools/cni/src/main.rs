//! pollgate-cni: the CNI plugin (spec 1.0.0 and 1.1.0; ADD, DEL, CHECK,
//! STATUS, GC, VERSION) that attaches containers to a running pollgate
//! engine. ADD creates a veth pair whose far end is `CNI_IFNAME` in the
//! container's namespace, gets addresses from the IPAM plugin the
//! configuration names (delegated from `CNI_PATH`), and asks the engine,
//! over its control socket, to serve the near end as an `afxdp` port of
//! the configured bridge (and VLAN). As ovs-cni and Calico-VPP do: the
//! plugin does the namespace work, the data plane only attaches. With the
//! `portMappings` capability (`podman run -p`), the engine's NAT
//! publishes the mapped ports to the container (`publish`).

mod conf;
mod engine;
mod ipam;
mod publish;
mod sandbox;

use conf::PollgateConf;
use rscni_plugin::cni::{Cni, Plugin};
use rscni_plugin::error::Error;
use rscni_plugin::types::{Args, CNIResult, Interface, IpConfig, PortMapping};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

struct PollgateCni;

/// The attachment an invocation is about: (container id, ifname).
fn attachment(args: &Args) -> Result<(String, String), Error> {
    let id = args
        .container_id()
        .ok_or_else(|| Error::missing_env(&["CNI_CONTAINERID"]))?;
    let ifname = args
        .ifname()
        .ok_or_else(|| Error::missing_env(&["CNI_IFNAME"]))?;
    Ok((id.to_string(), ifname.to_string()))
}

/// The port mappings the runtime asks for (`runtimeConfig`, given when
/// the configuration declares the `portMappings` capability).
fn mappings(args: &Args) -> &[PortMapping] {
    args.config()
        .runtime_config
        .as_ref()
        .map_or(&[], |r| r.port_mappings.as_slice())
}

/// The IPv4 address ADD published to: the one the result the runtime
/// cached (and hands DEL and CHECK) gave this plugin's sandbox interface
/// `ifname`. Chained after another plugin, the result holds that one's
/// addresses too.
fn published_to(args: &Args, ifname: &str) -> Option<Ipv4Addr> {
    let r = args.config().prev_result.as_ref()?;
    let ours = r
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.is_some())? as u32;
    ipv4(r.ips.iter().filter(|ip| ip.interface == Some(ours)))
}

/// The first IPv4 address of a result's: where NAT publishes to.
fn ipv4<'a>(ips: impl IntoIterator<Item = &'a IpConfig>) -> Option<Ipv4Addr> {
    ips.into_iter().find_map(|ip| match ip.address.addr() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    })
}

fn netns(args: &Args) -> Result<PathBuf, Error> {
    args.netns()
        .cloned()
        .ok_or_else(|| Error::missing_env(&["CNI_NETNS"]))
}

/// The engine's refusal of a request, as a CNI error.
fn refused(what: &str) -> impl Fn(Result<String, Error>) -> Error + '_ {
    move |e| match e {
        Ok(msg) => Error::Custom(101, format!("pollgate refused {what}"), msg),
        Err(e) => e,
    }
}

impl Cni for PollgateCni {
    fn add(&self, args: Args) -> Result<CNIResult, Error> {
        let conf = PollgateConf::of(args.config())?;
        let (id, ifname) = attachment(&args)?;
        let path = netns(&args)?;
        // Nothing is made until the engine is known to be there.
        engine::reachable(&conf.ctl_socket)?;
        if sandbox::has_interface(&path, &ifname)? {
            return Err(Error::Custom(
                100,
                "interface exists".into(),
                format!("the container already has {ifname}"),
            ));
        }
        let host = sandbox::host_name(&id, &ifname);
        let leased = ipam::delegate(&args, "ADD")?.unwrap_or_default();
        let undo_ipam = || {
            let _ = ipam::delegate(&args, "DEL");
        };
        let mappings = mappings(&args);
        let v4 = ipv4(&leased.ips);
        let publish = publish::add_requests(mappings, conf.nat_out.as_deref(), v4)
            .inspect_err(|_| undo_ipam())?;
        let (host_mac, cont_mac) =
            sandbox::create(&path, &host, &ifname, conf.mtu, &leased.ips, &leased.routes)
                .inspect_err(|_| undo_ipam())?;
        let mut req = format!(
            "port add name={host} kind=afxdp iface={host} bridge={}",
            conf.bridge
        );
        if let Some(v) = conf.vid {
            req += &format!(" vid={v}");
        }
        if let Some(w) = conf.worker {
            req += &format!(" worker={w}");
        }
        if let Err(e) = engine::request(&conf.ctl_socket, &req) {
            let _ = sandbox::delete(&host);
            undo_ipam();
            return Err(refused("the container's port")(e));
        }
        for (k, p) in publish.iter().enumerate() {
            if let Err(e) = engine::request(&conf.ctl_socket, p) {
                // What was published goes again, and the port with it.
                let done = publish::del_requests(&mappings[..k], conf.nat_out.as_deref(), v4);
                for d in done.unwrap_or_default() {
                    let _ = engine::request(&conf.ctl_socket, &d);
                }
                let _ = engine::request(&conf.ctl_socket, &format!("port del {host}"));
                let _ = sandbox::delete(&host);
                undo_ipam();
                return Err(refused("a mapped port")(e));
            }
        }
        // Chained after another plugin: its result is passed on, with
        // this plugin's interfaces after its own.
        let mut result = args.config().prev_result.clone().unwrap_or_default();
        let base = result.interfaces.len() as u32;
        result.interfaces.push(Interface {
            name: host,
            mac: host_mac,
            mtu: Some(conf.mtu),
            sandbox: None,
            socket_path: None,
            pci_id: None,
        });
        result.interfaces.push(Interface {
            name: ifname,
            mac: cont_mac,
            mtu: Some(conf.mtu),
            sandbox: Some(path.display().to_string()),
            socket_path: None,
            pci_id: None,
        });
        for mut ip in leased.ips {
            ip.interface = Some(base + 1);
            result.ips.push(ip);
        }
        result.routes.extend(leased.routes);
        if leased.dns.is_some() {
            result.dns = leased.dns;
        } else if result.dns.is_none() {
            result.dns = args.config().dns.clone();
        }
        Ok(result)
    }

    /// Idempotent: a container already gone, an engine not running, a
    /// port already detached all succeed.
    fn del(&self, args: Args) -> Result<(), Error> {
        let (id, ifname) = attachment(&args)?;
        let host = sandbox::host_name(&id, &ifname);
        if let Ok(conf) = PollgateConf::of(args.config()) {
            // Without a cached result (a runtime that lost its cache),
            // the address the container's interface still has, if the
            // pair is this plugin's. After a refused ADD there is
            // neither (its rollback removed the pair, or it made none),
            // so nothing of another container's is withdrawn.
            let v4 = published_to(&args, &ifname).or_else(|| {
                args.netns()
                    .and_then(|p| sandbox::ipv4_of(p, &host, &ifname))
            });
            let withdraw = publish::del_requests(mappings(&args), conf.nat_out.as_deref(), v4);
            // A mapping already withdrawn (a DEL repeated), or an engine
            // without NAT any more, is no error.
            for d in withdraw.unwrap_or_default() {
                match engine::request(&conf.ctl_socket, &d) {
                    Err(Ok(m)) if !m.contains("nothing published") && !m.contains("no [[nat]]") => {
                        return Err(refused("withdrawing a mapped port")(Ok(m)))
                    }
                    _ => {}
                }
            }
            match engine::request(&conf.ctl_socket, &format!("port del {host}")) {
                Err(Ok(m)) if !m.contains("no port named") => {
                    return Err(refused("detaching the container's port")(Ok(m)))
                }
                _ => {}
            }
        }
        sandbox::delete(&host)?;
        if args.config().ipam.is_some() {
            ipam::delegate(&args, "DEL")?;
        }
        Ok(())
    }

    fn check(&self, args: Args) -> Result<(), Error> {
        let conf = PollgateConf::of(args.config())?;
        let (id, ifname) = attachment(&args)?;
        let host = sandbox::host_name(&id, &ifname);
        if !sandbox::has_interface(&netns(&args)?, &ifname)? {
            return Err(Error::Custom(
                103,
                "interface missing".into(),
                format!("the container has no {ifname}"),
            ));
        }
        if !engine::ports(&conf.ctl_socket)?.contains(&host) {
            return Err(Error::Custom(
                104,
                "port not attached".into(),
                format!("pollgate does not serve {host} (restarted without its journal?)"),
            ));
        }
        // Every mapping ADD published is still published to this
        // container (a `reload` of a file that publishes the same port
        // elsewhere would have taken it).
        if let (Some(v4), [_, ..]) = (published_to(&args, &ifname), mappings(&args)) {
            let shown = engine::published(&conf.ctl_socket)?;
            if let Some(m) = publish::missing(mappings(&args), v4, &shown)? {
                return Err(Error::Custom(
                    105,
                    "port not published".into(),
                    format!("pollgate does not publish {m}"),
                ));
            }
        }
        ipam::delegate(&args, "CHECK").map(|_| ())
    }

    fn status(&self, args: Args) -> Result<(), Error> {
        let conf = PollgateConf::of(args.config())?;
        engine::reachable(&conf.ctl_socket)
            .map_err(|e| Error::PluginNotAvailable(e.details().to_string()))
    }

    /// Detaches and deletes every pollgate-cni port of this network's
    /// bridge that the runtime no longer lists as valid.
    fn gc(&self, args: Args) -> Result<(), Error> {
        let conf = PollgateConf::of(args.config())?;
        let valid: Vec<String> = args
            .config()
            .valid_attachments
            .iter()
            .flatten()
            .map(|a| sandbox::host_name(&a.container_id, &a.ifname))
            .collect();
        for port in engine::members(&conf.ctl_socket, &conf.bridge)? {
            if port.starts_with("pgc") && !valid.contains(&port) {
                engine::request(&conf.ctl_socket, &format!("port del {port}"))
                    .map_err(refused("detaching a stale port"))?;
                sandbox::delete(&port)?;
            }
        }
        // host-local before 1.1 has no GC: its leases go with DEL.
        let _ = ipam::delegate(&args, "GC");
        Ok(())
    }
}

fn main() {
    let plugin = Plugin::default().msg(concat!(
        "pollgate-cni ",
        env!("CARGO_PKG_VERSION"),
        ": attaches containers to a running pollgate engine"
    ));
    if let Err(e) = plugin.run(&PollgateCni) {
        eprintln!("pollgate-cni: {e}");
        std::process::exit(1);
    }
}
