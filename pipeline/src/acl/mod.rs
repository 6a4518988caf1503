//! Access control lists: ordered permit/deny rules over addresses, ports,
//! protocol, EtherType, VLAN, bridge domain and ingress port, compiled into
//! a batch classifier, swapped in live, with reflexive (stateful) permits.

pub mod classbench;
pub mod classifier;
pub mod dfa;
pub mod key;
pub mod linear;
pub mod rule;
pub mod set;
pub mod stage;

pub use crate::conntrack::{FlowCounters, FlowTable, FlowTimeouts};
pub use key::{AclKey, Family};
pub use rule::{Action, IpPrefix, PortRange, Rule, RuleError};
pub use set::{AclError, AclHandle, AclSet, AclView, Decision, Edit, MAX_OVERLAY};
pub use stage::{AclAttachments, AclStage};
