//! Wiring: checks that the machine can run the agent, loads the kernel side,
//! starts the exporters and discovery, and hands the event loop its state.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::{mpsc, watch};

use super::exporters::Exporters;
use super::{Agent, Discovery, Kernel, Routes, discovery, event_loop, stats};
use crate::clock::Clock;
use crate::config::Config;
use crate::discover::{self, DiscoveryEvent, Trigger};
use crate::ebpf::ring::Ring;
use crate::ebpf::{LoadOptions, Tracer};
use crate::export::resource::HostInfo;
use crate::preflight;
use crate::tracker::Tracker;
use crate::transform::routes::RouteDecorator;

/// Room in each queue between the loop and discovery.
const DISCOVERY_QUEUE: usize = 4096;

pub(super) async fn start(cfg: Config) -> Result<Agent> {
    let cfg = Arc::new(cfg);
    check_machine(&cfg)?;
    raise_fd_limit();
    keep_large_blocks_mapped();
    let hostname = hostname(&cfg);
    let self_pid = std::process::id();
    let matcher = discover::criteria::Matcher::new(&cfg, self_pid);
    let kernel = load_kernel(&cfg, matcher.needs_exec_events())?;

    let mut exporters = Exporters::start(&cfg, HostInfo::detect(&hostname), stats::exposed()).await?;

    let (triggers, trigger_rx) = mpsc::channel::<Trigger>(DISCOVERY_QUEUE);
    let (decision_tx, decisions) = mpsc::channel::<DiscoveryEvent>(DISCOVERY_QUEUE);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(discover::run(cfg.clone(), self_pid, hostname, trigger_rx, decision_tx, stop_rx));
    let discovery = Discovery { task, triggers, decisions, needs_ports: matcher.needs_ports(), stop };

    let clock = Clock::new();
    let mut tracker = Tracker::new(clock, cfg.ebpf.http_request_timeout.as_nanos() as u64);
    tracker.keep_db_query_literals(cfg.ebpf.db_query_literals);
    let routes = Routes { decorator: RouteDecorator::new(&cfg.metrics.routes), verdicts: Vec::new() };
    let nodejs = crate::nodejs::Injector::start(cfg.nodejs_enabled);
    let signals = event_loop::Signals::new(exporters.quit.take())?;
    let agent = Agent {
        cfg,
        clock,
        kernel,
        tracker,
        discovery,
        processes: discovery::Processes::default(),
        nodejs,
        golang: crate::golang::Registry::default(),
        routes,
        exporters,
        stats: stats::Stats::default(),
        signals,
    };
    tracing::info!(component = "obi.Instrumenter", version = env!("CARGO_PKG_VERSION"), "obi-rs started");
    Ok(agent)
}

/// Fails with every unmet requirement at once.
fn check_machine(cfg: &Config) -> Result<()> {
    // First, so the memlock check below sees what the maps will get.
    match crate::ebpf::memlock::raise() {
        Ok(limit) => tracing::debug!(component = "obi.Instrumenter", %limit, "RLIMIT_MEMLOCK raised"),
        Err(err) => tracing::debug!(component = "obi.Instrumenter", error = %err, "cannot raise RLIMIT_MEMLOCK"),
    }
    let checks = preflight::run(&preflight::Needs::from_config(cfg));
    let failures = preflight::failures(&checks);
    if !failures.is_empty() {
        // One line per failure; the final error only counts them, so that
        // each is said once.
        for f in &failures {
            tracing::error!(component = "obi.Preflight", "{f}");
        }
        bail!("this machine cannot run obi-rs: {} requirement(s) not met, logged above", failures.len());
    }
    for w in preflight::startup_warnings(&checks) {
        tracing::warn!(component = "obi.Preflight", "{w}");
    }
    preflight::ensure_tracefs().context("tracefs is needed to attach tracepoints")?;
    if cfg.ebpf.context_propagation.wants_tcp_options() {
        tracing::warn!(
            component = "obi.Instrumenter",
            context_propagation = cfg.ebpf.context_propagation.as_str(),
            "context propagation through TCP options is not implemented in obi-rs; only HTTP headers are injected"
        );
    }
    Ok(())
}

fn load_kernel(cfg: &Config, exec_events: bool) -> Result<Kernel> {
    let mut tracer =
        Tracer::load(&LoadOptions::from_config(cfg, exec_events)).context("Unable to load eBPF programs")?;
    let events = Ring::new(tracer.take_events()?)?;
    let proc_events = Ring::new(tracer.take_proc_events()?)?;
    release_freed_heap();
    Ok(Kernel { tracer, events, proc_events })
}

/// Raises the soft limit on open files to the hard limit: the default soft
/// limit (1024) is small next to what the agent opens (kernel maps and
/// probes, /proc files, scrape and OTLP connections), and running out stops
/// tracing new processes.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        let err = std::io::Error::last_os_error();
        tracing::warn!(component = "obi.Instrumenter", error = %err, "cannot read the open file limit");
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        } else {
            let err = std::io::Error::last_os_error();
            tracing::warn!(component = "obi.Instrumenter", error = %err, soft = before, hard = lim.rlim_max, "cannot raise the open file limit");
            return;
        }
    }
    tracing::info!(component = "obi.Instrumenter", open_files = lim.rlim_cur, was = before, "open file limit");
}

fn hostname(cfg: &Config) -> String {
    if let Some(h) = &cfg.hostname {
        return h.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// glibc raises its mmap threshold each time a large block is freed; from
/// then on large short-lived buffers (an encoded OTLP batch is about a
/// megabyte) come from the heap, whose holes the process keeps: resident
/// size creeps up while an exporter keeps failing. A fixed threshold keeps
/// them mapped, and returned to the system when freed.
fn keep_large_blocks_mapped() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes an allocator setting.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Loading parsed the kernel's BTF and relocated every program: megabytes
/// that are freed by now but that glibc keeps mapped. Hand them back so the
/// agent's resident size is what it actually uses.
fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
