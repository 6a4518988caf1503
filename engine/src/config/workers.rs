//! `[[xconnect]]` and `[[worker]]`: static cross-connects, and which
//! worker serves which port queue.

use super::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XconnectSection {
    pub ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// CPU to pin to; unpinned when absent.
    pub core: Option<Spanned<usize>>,
    pub ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub core: Option<usize>,
    /// Ports with at least one queue served here.
    pub ports: Vec<usize>,
    /// The (port, queue) pairs this worker polls.
    pub queues: Vec<(usize, u32)>,
}

/// Ports in a cross-connect, by index.
pub(super) type CrossConnected = HashMap<usize, ()>;

/// Resolves `[[xconnect]]` pairs; also returns the set of cross-connected
/// ports (which cannot be bridge members or the VTEP's underlay).
pub(super) fn validate_xconnects(
    cx: &Ctx,
    config: &Config,
    resolve: &Resolve,
) -> Result<(Vec<(usize, usize)>, CrossConnected), ConfigError> {
    let mut paired: HashMap<usize, ()> = HashMap::new();
    let mut xconnects = Vec::new();
    for x in &config.xconnect {
        let names = x.ports.get_ref();
        if names.len() != 2 {
            return Err(cx.err(
                x.ports.span(),
                "xconnect.ports",
                format!("needs exactly two ports, got {}", names.len()),
            ));
        }
        let a = resolve(&names[0], "xconnect.ports")?;
        let b = resolve(&names[1], "xconnect.ports")?;
        if a == b {
            return Err(cx.err(
                x.ports.span(),
                "xconnect.ports",
                "a port cannot be connected to itself",
            ));
        }
        for (k, s) in [(a, &names[0]), (b, &names[1])] {
            if paired.insert(k, ()).is_some() {
                return Err(cx.err(
                    s.span(),
                    "xconnect.ports",
                    format!("{:?} is already cross-connected", s.get_ref()),
                ));
            }
        }
        xconnects.push((a, b));
    }
    Ok((xconnects, paired))
}

/// Resolves `[[worker]]` sections (one unpinned worker when there are
/// none): every queue of every port served exactly once, and a pool big
/// enough to stock each worker's fill rings (sized here when the file
/// does not set it).
pub(super) fn validate_workers(
    cx: &Ctx,
    config: &Config,
    ports: &[PortSpec],
    resolve: &Resolve,
    pool: &mut PoolConfig,
) -> Result<Vec<WorkerSpec>, ConfigError> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // Who serves each (port, queue); the owner of a port (for hand-offs
    // from other workers) is the worker of its queue 0.
    let mut served: HashMap<(usize, u32), usize> = HashMap::new();
    let mut owner: Vec<Option<usize>> = vec![None; ports.len()];
    let mut workers = Vec::new();
    for (w, ws) in config.workers.iter().enumerate() {
        if let Some(c) = &ws.core {
            if !cores.is_empty() && !cores.iter().any(|id| id.id == *c.get_ref()) {
                return Err(cx.err(
                    c.span(),
                    "worker.core",
                    format!(
                        "core {} is not available to this process ({} cores)",
                        c.get_ref(),
                        cores.len()
                    ),
                ));
            }
        }
        let mut list = Vec::new();
        let mut queues = Vec::new();
        for s in ws.ports.get_ref() {
            // "name" serves every queue of the port, "name@q" one queue.
            let (name, q) = match s.get_ref().split_once('@') {
                Some((n, q)) => (n, Some(q)),
                None => (s.get_ref().as_str(), None),
            };
            let k = resolve(&Spanned::new(s.span(), name.to_string()), "worker.ports")?;
            let nq = ports[k].queues;
            let qs: Vec<u32> = match q {
                None => (0..nq).collect(),
                Some(q) => match q.parse::<u32>() {
                    Ok(q) if q < nq => vec![q],
                    _ => {
                        return Err(cx.err(
                            s.span(),
                            "worker.ports",
                            format!("{:?}: port {name:?} has queues 0..{nq}", s.get_ref()),
                        ))
                    }
                },
            };
            for q in qs {
                if let Some(prev) = served.insert((k, q), w) {
                    return Err(cx.err(
                        s.span(),
                        "worker.ports",
                        format!("queue {q} of {name:?} is already served by worker {prev}"),
                    ));
                }
                if q == 0 {
                    owner[k] = Some(w);
                }
                queues.push((k, q));
            }
            if !list.contains(&k) {
                list.push(k);
            }
        }
        workers.push(WorkerSpec {
            core: ws.core.as_ref().map(|c| *c.get_ref()),
            ports: list,
            queues,
        });
    }
    if workers.is_empty() {
        // One unpinned worker serves everything.
        let queues: Vec<(usize, u32)> = ports
            .iter()
            .enumerate()
            .flat_map(|(k, p)| (0..p.queues).map(move |q| (k, q)))
            .collect();
        for &(k, q) in &queues {
            served.insert((k, q), 0);
        }
        workers.push(WorkerSpec {
            core: None,
            ports: (0..ports.len())
                .filter(|&k| !ports[k].is_vacant())
                .collect(),
            queues,
        });
        owner.iter_mut().for_each(|o| *o = Some(0));
    }
    for (k, p) in ports.iter().enumerate() {
        if let Some(q) = (0..p.queues).find(|q| !served.contains_key(&(k, *q))) {
            let s = &config.ports[k].name;
            return Err(cx.err(
                s.span(),
                "worker.ports",
                format!(
                    "queue {q} of port {:?} is served by no worker: its traffic would be lost",
                    s.get_ref()
                ),
            ));
        }
    }
    for (k, o) in owner.iter().enumerate() {
        if o.is_none() && !ports[k].is_vacant() {
            let s = &config.ports[k].name;
            return Err(cx.err(
                s.span(),
                "worker.ports",
                format!("port {:?} is served by no worker", s.get_ref()),
            ));
        }
    }
    // Each AF_XDP socket keeps its fill ring stocked from its worker's
    // pool; the pool must cover those and a burst per port on top.
    for ws in &workers {
        let fill: u64 = ws
            .queues
            .iter()
            .filter(|&&(k, _)| matches!(ports[k].kind, PortKind::Veth | PortKind::Afxdp))
            .map(|&(k, _)| ports[k].afxdp.fill_size as u64)
            .sum();
        let need = fill + (2 * pollgate_pipeline::BATCH_SIZE * ws.queues.len()) as u64;
        if config.pool.frames.span().is_empty() && (pool.frames as u64) < need * 2 {
            // Not set in the file: size the pool for the ports.
            pool.frames = (need * 2).next_power_of_two() as u32;
        } else if (pool.frames as u64) < need {
            return Err(cx.err(config.pool.frames.span(), "pool.frames", format!("{} frames cannot stock the fill rings of a worker's AF_XDP ports ({fill}) and leave two bursts per port: use at least {}", pool.frames, need.next_power_of_two())));
        }
    }
    Ok(workers)
}
