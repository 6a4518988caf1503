//! The compiled ACL classifier against a plain first-match scan: random
//! rule sets (overlapping prefixes and port ranges, both families, non-IP
//! rules) and random packets, most of them aimed inside some rule.

use pollgate_pipeline::acl::classifier::BitVector;
use pollgate_pipeline::acl::key::chunk;
use pollgate_pipeline::acl::linear::first_match;
use pollgate_pipeline::acl::{
    AclKey, AclSet, Action, Edit, Family, IpPrefix, PortRange, Rule, MAX_OVERLAY,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A small deterministic generator, so 10 K-rule sets cost no shrinking.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Base networks the prefixes are cut from, so rules nest and overlap.
const V4_BASES: [u32; 4] = [0xc612_0000, 0xc613_0000, 0xc612_8000, 0x0a00_0000];

fn prefix(rng: &mut Rng, v6: bool, specific: bool) -> IpPrefix {
    if v6 {
        let base: u128 = 0x2001_0db8 << 96 | (rng.below(4) as u128) << 80;
        let addr = base | (rng.next() as u128) << 16 | rng.below(65536) as u128;
        let len = if specific {
            [48, 64, 96, 112, 120, 127, 128, 128][rng.below(8) as usize]
        } else {
            [0, 16, 32, 48, 64, 96, 127, 128][rng.below(8) as usize]
        };
        IpPrefix::new(IpAddr::V6(Ipv6Addr::from(addr)), len).unwrap()
    } else {
        let base = V4_BASES[rng.below(4) as usize];
        let addr = base | (rng.below(1 << 16) as u32);
        let len = if specific {
            [24, 24, 28, 30, 31, 32, 32, 32, 32, 32][rng.below(10) as usize]
        } else {
            [0, 8, 15, 16, 17, 20, 24, 28, 31, 32][rng.below(10) as usize]
        };
        IpPrefix::new(IpAddr::V4(Ipv4Addr::from(addr)), len).unwrap()
    }
}

fn ports(rng: &mut Rng, specific: bool) -> PortRange {
    const EDGES: [u16; 8] = [0, 53, 80, 443, 1023, 1024, 8080, 65535];
    match rng.below(4) {
        0 if !specific => PortRange::ANY,
        0 => PortRange {
            lo: 1024,
            hi: 65535,
        },
        1 => {
            let p = EDGES[rng.below(8) as usize];
            PortRange { lo: p, hi: p }
        }
        2 => {
            let a = EDGES[rng.below(8) as usize];
            let b = EDGES[rng.below(8) as usize];
            PortRange {
                lo: a.min(b),
                hi: a.max(b),
            }
        }
        _ => {
            let a = rng.below(65536) as u16;
            let b = rng.below(65536) as u16;
            PortRange {
                lo: a.min(b),
                hi: a.max(b),
            }
        }
    }
}

fn rule(rng: &mut Rng, specific: bool) -> Rule {
    let mut r = Rule::new(if rng.chance(50) {
        Action::Permit
    } else {
        Action::Deny
    });
    let kind = if specific { 0 } else { rng.below(10) };
    if kind < 8 {
        let v6 = kind == 7;
        if specific || rng.chance(80) {
            r.src = Some(prefix(rng, v6, specific));
        }
        if specific || rng.chance(80) {
            r.dst = Some(prefix(rng, v6, specific));
        }
        if specific || rng.chance(70) {
            r.proto = Some([6, 17, 1, 58][rng.below(4) as usize]);
        }
        r.sport = ports(rng, specific);
        r.dport = ports(rng, specific);
    }
    if !specific && rng.chance(10) {
        r.ethertype = Some([0x0800, 0x86dd, 0x0806][rng.below(3) as usize]);
    }
    if !specific && rng.chance(10) {
        r.vlan = Some(rng.below(4) as u16 * 10);
    }
    if !specific && rng.chance(10) {
        r.domain = Some(rng.below(3) as u16);
    }
    if !specific && rng.chance(10) || (kind == 8 || kind == 9) && r == Rule::new(r.action) {
        r.in_port = Some(rng.below(4) as u16);
    }
    r
}

/// A packet inside a random rule's fields, perturbed now and then so it
/// lands on range edges and just outside them.
fn packet(rng: &mut Rng, rules: &[Rule]) -> AclKey {
    let mut k = AclKey::EMPTY;
    let r = if rules.is_empty() || rng.chance(10) {
        rule(rng, false)
    } else {
        rules[rng.below(rules.len() as u64) as usize].clone()
    };
    let fam = r.families();
    k.family = if fam.v4 && (!fam.v6 || rng.chance(70)) {
        Family::V4
    } else if fam.v6 {
        Family::V6
    } else {
        Family::Other
    };
    if rng.chance(5) {
        k.family = [Family::V4, Family::V6, Family::Other][rng.below(3) as usize];
    }
    let v6 = k.family == Family::V6;
    let pick = |rng: &mut Rng, p: Option<IpPrefix>| {
        let p = match p {
            Some(p) if p.v6 == v6 => p,
            _ => prefix(rng, v6, false),
        };
        let host_bits = if v6 { 128 } else { 32 } - p.len as u32;
        let mut host = if host_bits == 0 {
            0
        } else {
            (rng.next() as u128 | (rng.next() as u128) << 64) & (u128::MAX >> (128 - host_bits))
        };
        if rng.chance(20) {
            host = 0;
        }
        let mut a = p.bits | host << (128 - if v6 { 128 } else { 32 });
        if rng.chance(5) {
            a ^= 1 << (127 - rng.below(if v6 { 128 } else { 32 }) as u32);
        }
        if !v6 {
            a &= u128::MAX << 96;
        }
        a
    };
    if k.family != Family::Other {
        let s = pick(rng, r.src);
        let d = pick(rng, r.dst);
        k.set_src(s);
        k.set_dst(d);
        k.c[chunk::PROTO] = r.proto.map_or(rng.below(256) as u16, u16::from);
        let port = |rng: &mut Rng, p: PortRange| {
            let span = (p.hi - p.lo) as u64 + 1;
            let v = p.lo as u64 + rng.below(span);
            match rng.below(10) {
                0 => p.lo.wrapping_sub(1),
                1 => p.hi.wrapping_add(1),
                _ => v as u16,
            }
        };
        k.c[chunk::SPORT] = port(rng, r.sport);
        k.c[chunk::DPORT] = port(rng, r.dport);
    }
    k.c[chunk::ETHERTYPE] = r.ethertype.unwrap_or(match k.family {
        Family::V4 => 0x0800,
        Family::V6 => 0x86dd,
        Family::Other => 0x0806,
    });
    k.c[chunk::VLAN] = r.vlan.unwrap_or(rng.below(4) as u16 * 10);
    k.c[chunk::DOMAIN] = r.domain.unwrap_or(rng.below(3) as u16);
    k.c[chunk::IN_PORT] = r.in_port.unwrap_or(rng.below(4) as u16);
    k
}

fn check(seed: u64, n_rules: usize, n_packets: usize, specific: bool) -> usize {
    let mut rng = Rng(seed | 1);
    let rules: Vec<Rule> = (0..n_rules).map(|_| rule(&mut rng, specific)).collect();
    let set = AclSet::compile("t", rules.clone(), Action::Deny, 1).unwrap();
    // The bit-vector classifier is the fallback where a DFA would be too
    // big; it answers for the same rules too.
    let subset = |f: fn(&Rule) -> bool| -> Vec<(u32, &Rule)> {
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| f(r))
            .map(|(i, r)| (i as u32, r))
            .collect()
    };
    let bv = [
        BitVector::compile(&subset(|r| r.families().v4)),
        BitVector::compile(&subset(|r| r.families().v6)),
        BitVector::compile(&subset(|r| r.families().other)),
    ];
    let mut matched = 0;
    let mut depth = 0;
    let mut deepest = 0;
    // Keys and answers per family, for the batched lookup after.
    let mut by_family: [Vec<(AclKey, Option<u32>)>; 3] = Default::default();
    for _ in 0..n_packets {
        let k = packet(&mut rng, &rules);
        let want = first_match(&rules, &k);
        assert_eq!(
            set.lookup(&k),
            want,
            "seed {seed}, {n_rules} rules, key {k:?}"
        );
        let f = match k.family {
            Family::V4 => 0,
            Family::V6 => 1,
            Family::Other => 2,
        };
        assert_eq!(
            bv[f].classify(&k),
            want,
            "bit-vector: seed {seed}, key {k:?}"
        );
        by_family[f].push((k, want));
        matched += want.is_some() as usize;
        depth += want.map_or(n_rules, |w| w as usize);
        deepest = deepest.max(want.map_or(0, |w| w as usize));
    }
    // Batches walk their keys together, step by step: each key still gets
    // its own first match.
    for (f, cases) in by_family.iter().enumerate() {
        let keys: Vec<AclKey> = cases.iter().map(|c| c.0).collect();
        let mut out = vec![0u32; keys.len()];
        bv[f].classify_many(&keys, &mut out);
        for ((k, want), got) in cases.iter().zip(&out) {
            let got = (*got != u32::MAX).then_some(*got);
            assert_eq!(got, *want, "bit-vector batch: seed {seed}, key {k:?}");
        }
    }
    // The generator aims inside rules: most packets must hit one, or the
    // comparison says little.
    if specific {
        assert!(
            matched * 3 > n_packets,
            "only {matched} of {n_packets} matched"
        );
        eprintln!(
            "{n_rules} rules: {matched} of {n_packets} matched, rule index mean {} max {deepest}",
            depth / n_packets
        );
        // Matches deep in the list exercise the later bit-vector words.
        assert!(deepest > n_rules / 2, "deepest match {deepest}");
    }
    matched
}

#[test]
fn agrees_with_linear_scan_small_sets() {
    for seed in 1..200 {
        check(seed * 7919, (seed % 40) as usize, 300, false);
    }
}

#[test]
fn agrees_with_linear_scan_1k_rules() {
    for seed in 1..6 {
        check(seed * 104_729, 1000, 3000, seed % 2 == 1);
    }
}

#[test]
fn agrees_with_linear_scan_10k_rules() {
    check(0x5eed, 10_000, 3000, false);
    check(0x5eed, 10_000, 3000, true);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn agrees_with_linear_scan(seed in any::<u64>(), n in 0usize..200) {
        check(seed, n, 200, n % 2 == 1 && n > 50);
    }
}

/// A set edited rule by rule without compiling (the overlay `acl add`
/// and `acl del` make) answers as a set compiled from the same list:
/// inserts anywhere, deletes of compiled and of added rules, lookups one
/// by one and in batches.
fn check_edits(seed: u64, n_rules: usize, edits: usize) {
    let mut rng = Rng(seed | 1);
    let mut rules: Vec<Rule> = (0..n_rules).map(|_| rule(&mut rng, true)).collect();
    let mut set = AclSet::compile("t", rules.clone(), Action::Deny, 1).unwrap();
    for e in 0..edits {
        let edit = if rules.is_empty() || rng.chance(60) {
            let i = rng.below(rules.len() as u64 + 1) as usize;
            rules.insert(i, rule(&mut rng, true));
            Edit::Insert(i)
        } else {
            let i = rng.below(rules.len() as u64) as usize;
            rules.remove(i);
            Edit::Remove(i)
        };
        set = match set.edited(rules.clone(), edit, 1) {
            Ok(s) => s,
            Err(back) => {
                assert!(e >= MAX_OVERLAY, "edit {e} refused");
                // A refused edit hands the list back as it was given.
                assert_eq!(back, rules);
                AclSet::compile("t", back, Action::Deny, 1).unwrap()
            }
        };
        assert_eq!(set.rules(), &rules[..]);
        let keys: Vec<AclKey> = (0..64).map(|_| packet(&mut rng, &rules)).collect();
        let mut many = vec![0u32; keys.len()];
        set.lookup_many(&keys, &mut many);
        for (k, m) in keys.iter().zip(&many) {
            let want = first_match(&rules, k);
            assert_eq!(
                set.lookup(k),
                want,
                "seed {seed}, edit {e} ({edit:?}), key {k:?}"
            );
            assert_eq!(
                (*m != u32::MAX).then_some(*m),
                want,
                "batch, seed {seed}, edit {e}"
            );
        }
    }
}

/// A compile that lands after more edits (the background compile's
/// case): the set rebased on it answers as the rules' linear scan, and
/// so does every later edit on top of it.
fn check_rebase(seed: u64, n_rules: usize, before: usize, during: usize, after: usize) {
    let mut rng = Rng(seed | 1);
    let mut rules: Vec<Rule> = (0..n_rules).map(|_| rule(&mut rng, true)).collect();
    let mut set = AclSet::compile("t", rules.clone(), Action::Deny, 1).unwrap();
    let edit_once = |set: &AclSet, rules: &mut Vec<Rule>, rng: &mut Rng| {
        let edit = if rules.is_empty() || rng.chance(60) {
            let i = rng.below(rules.len() as u64 + 1) as usize;
            rules.insert(i, rule(rng, true));
            Edit::Insert(i)
        } else {
            let i = rng.below(rules.len() as u64) as usize;
            rules.remove(i);
            Edit::Remove(i)
        };
        set.edited(rules.clone(), edit, 1).ok()
    };
    let agree = |set: &AclSet, rules: &[Rule], rng: &mut Rng, what: &str| {
        assert_eq!(set.rules(), rules);
        let keys: Vec<AclKey> = (0..64).map(|_| packet(rng, rules)).collect();
        let mut many = vec![0u32; keys.len()];
        set.lookup_many(&keys, &mut many);
        for (k, m) in keys.iter().zip(&many) {
            let want = first_match(rules, k);
            assert_eq!(set.lookup(k), want, "seed {seed}, {what}, key {k:?}");
            assert_eq!(
                (*m != u32::MAX).then_some(*m),
                want,
                "batch, seed {seed}, {what}"
            );
        }
    };
    for _ in 0..before {
        set = edit_once(&set, &mut rules, &mut rng).expect("fits an overlay");
    }
    // The background compile starts from this set...
    let snap = set;
    let compiled = AclSet::compile("t", snap.rules().to_vec(), Action::Deny, 1).unwrap();
    // ... and edits go on while it runs.
    let mut later: Vec<AclSet> = Vec::new();
    for _ in 0..during {
        let next = edit_once(later.last().unwrap_or(&snap), &mut rules, &mut rng);
        later.push(next.expect("fits an overlay"));
    }
    let current = later.last().unwrap_or(&snap);
    let rebased = match current.rebased(&compiled, &snap, 1) {
        Some(r) => r,
        None if before == 0 => return,
        None => panic!("seed {seed}: an edit chain of the snapshot is refused"),
    };
    assert!(rebased.pending() <= during);
    assert_eq!(rebased.is_compiled(), during == 0);
    agree(&rebased, &rules, &mut rng, "rebased");
    let mut set = rebased;
    for e in 0..after {
        set = edit_once(&set, &mut rules, &mut rng).expect("fits an overlay");
        agree(
            &set,
            &rules,
            &mut rng,
            &format!("edit {e} after the rebase"),
        );
    }
}

#[test]
fn a_compile_that_lands_after_more_edits_keeps_them_1k_rules() {
    check_rebase(0x5eba5e, 1000, 10, 12, 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn a_compile_that_lands_after_more_edits_keeps_them(
        seed in any::<u64>(), n in 0usize..120, before in 0usize..12, during in 0usize..12, after in 0usize..8,
    ) {
        check_rebase(seed, n, before, during, after);
    }
}

/// A set compiled elsewhere (a `reload`, or an edit that compiled the
/// list itself) is not the base of the one compiled from: no rebase.
#[test]
fn a_set_on_other_classifiers_is_not_rebased() {
    let mut rng = Rng(7);
    let mut rules: Vec<Rule> = (0..50).map(|_| rule(&mut rng, true)).collect();
    let set = AclSet::compile("t", rules.clone(), Action::Deny, 1).unwrap();
    rules.insert(3, rule(&mut rng, true));
    let snap = set.edited(rules.clone(), Edit::Insert(3), 1).ok().unwrap();
    let compiled = AclSet::compile("t", rules.clone(), Action::Deny, 1).unwrap();
    rules.insert(0, rule(&mut rng, true));
    let elsewhere = AclSet::compile("t", rules[1..].to_vec(), Action::Deny, 1).unwrap();
    let other = elsewhere
        .edited(rules.clone(), Edit::Insert(0), 1)
        .ok()
        .unwrap();
    assert!(other.rebased(&compiled, &snap, 1).is_none());
}

#[test]
fn edits_without_compiling_agree_with_linear_scan_1k_rules() {
    check_edits(0xed17, 1000, 40);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn edits_without_compiling_agree_with_linear_scan(seed in any::<u64>(), n in 0usize..120, edits in 1usize..40) {
        check_edits(seed, n, edits);
    }
}
