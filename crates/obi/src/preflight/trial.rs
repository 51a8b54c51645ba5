//! `obi check`'s last step: load and attach the real programs with the
//! configuration's settings, then detach them. A verifier rejection or a
//! refused hook then shows in the check, with the program and the
//! verifier's words, instead of at the agent's start.

use std::time::Instant;

use super::Check;
use crate::config::Config;
use crate::ebpf::{LoadOptions, Tracer};

/// The checks of a trial load: one for the load, one per refused feature.
pub(crate) fn checks(cfg: &Config) -> Vec<Check> {
    let started = Instant::now();
    match Tracer::load(&LoadOptions::from_config(cfg, true)) {
        Ok(tracer) => {
            let mut out = vec![Check::ok(
                "eBPF programs",
                format!(
                    "{} loaded and attached in {:.1} s ({}), then detached",
                    tracer.program_count(),
                    started.elapsed().as_secs_f64(),
                    tracer.build()
                ),
            )];
            for u in tracer.unavailable() {
                out.push(Check::warn(
                    u.what.clone(),
                    format!("refused by this kernel: {}", u.error),
                    format!("lost: {}", u.lost),
                ));
            }
            out
        }
        Err(err) => vec![Check::fail(
            "eBPF programs",
            format!("{:#}", anyhow::Error::new(err)),
            "the agent cannot start on this kernel with this configuration; please report the line above",
        )],
    }
}
