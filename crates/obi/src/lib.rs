//! obi-rs: zero-code OpenTelemetry traces and RED metrics through eBPF.
//!
//! Pipeline: `discover` (which processes) -> `ebpf` (kernel events) ->
//! `tracker` (connections, protocol parsing) -> `span` -> `export` sinks.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod discover;
pub mod ebpf;
pub mod export;
pub mod logging;
pub mod preflight;
pub mod service;
pub mod span;
pub mod tracker;
pub mod transform;
