//! obi-rs: zero-code OpenTelemetry traces and RED metrics through eBPF.
//!
//! Pipeline: `discover` (which processes) -> `ebpf` (kernel events) ->
//! `tracker` (connections, protocol parsing) -> `span` -> `export` sinks.

//!
//! Everything is private to the crate but [`main`]: the binary is the
//! product, so the compiler can tell which code nothing uses.

mod agent;
mod cli;
mod clock;
mod commands;
mod config;
mod discover;
mod ebpf;
mod export;
mod golang;
mod logging;
mod nodejs;
mod preflight;
mod service;
mod span;
mod tracker;
mod transform;

pub use commands::main;
