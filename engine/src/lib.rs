//! The pollgate engine: configuration, topology, workers, stats, and the
//! commands of the `pollgate` binary.

pub mod acl_ctl;
pub mod acl_tool;
pub mod bench;
pub mod bench_gateway;
pub mod bench_router;
pub mod bench_service;
pub mod bench_traffic;
pub mod bridge_ctl;
pub mod build;
pub mod capture;
pub mod change;
pub mod config;
pub mod cpu_info;
pub mod ctl;
pub mod demo;
pub mod engine;
pub mod evpn;
pub mod evpn_ctl;
pub mod fib_tool;
pub mod l3_ctl;
pub mod live;
pub mod mac_keeper;
pub mod metrics;
pub mod nat_ctl;
pub mod reaper;
pub mod reload;
pub mod route_ctl;
pub mod stats;
pub mod telemetry;
pub mod topology_ctl;
pub mod worker;

pub use engine::{Engine, EngineError, Summary};
