//! The `obi` commands: run the agent (with the trace printer, or with the
//! live view of `obi top`), or check whether this machine can run it.
//!
//! `obi top` runs the agent itself, with the same configuration, rather
//! than attaching to a running one: one privileged command, like `top`,
//! with nothing else to set up on a home-lab machine. OTLP and Prometheus
//! exporters keep working beside the view; the trace printer gives way to it
//! (the terminal is the view's).

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::{CheckArgs, Command, RunArgs};
use crate::config::{Config, ConfigError, LogLevel, TracePrinter};

/// Parses the command line and runs the command it names.
pub fn main() -> ExitCode {
    let cli = crate::cli::parse_from_env();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Top(args) => top(&args),
        Command::Check(args) => check(&args),
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let cfg = match crate::config::load_from_process_env(&args.overrides()) {
        Ok(cfg) => cfg,
        Err(err) => return wrong_configuration(&err),
    };
    crate::logging::init(cfg.log_level, cfg.log_format);
    run_agent(cfg)
}

fn top(args: &RunArgs) -> ExitCode {
    if !std::io::stdout().is_terminal() {
        eprint!(
            "{}",
            crate::logging::text_line(
                LogLevel::Error,
                "obi top draws on a terminal, and stdout is not one",
                &[("fix", "run it in a terminal, or run `obi` with OTEL_EBPF_TRACE_PRINTER for a stream of spans")]
            )
        );
        return ExitCode::from(2);
    }
    // The view counts as the exporter the configuration must have.
    let env = |k: &str| match std::env::var(k).ok() {
        None if k == "OTEL_EBPF_TRACE_PRINTER" => Some("text".to_string()),
        v => v,
    };
    let mut cfg = match crate::config::load(&args.overrides(), &env) {
        Ok(cfg) => cfg,
        Err(err) => return wrong_configuration(&err),
    };
    cfg.trace_printer = TracePrinter::Top;
    crate::logging::init_with(cfg.log_level, cfg.log_format, crate::export::top::logs::PaneOrStderr);
    run_agent(cfg)
}

/// A configuration error is a log line: on stderr, like every log line.
fn wrong_configuration(err: &ConfigError) -> ExitCode {
    eprint!("{}", crate::logging::text_line(LogLevel::Error, "wrong configuration", &[("error", &err.to_string())]));
    ExitCode::from(2)
}

fn run_agent(cfg: Config) -> ExitCode {
    cfg.log_diagnostics();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(component = "obi", error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(crate::agent::run(cfg));
    // The stop kept to its deadline: blocking work still running (a detach
    // the kernel completes at exit, a /proc scan) is not waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(component = "obi", error = %format!("{err:#}"), "obi-rs cannot run");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let cfg = crate::config::load_unvalidated_from_process_env(&args.run_args().overrides());
    let needs = cfg.as_ref().map(crate::preflight::Needs::from_config).unwrap_or_default();
    // What the agent does first, so the memlock check reports what its maps get.
    let _ = crate::ebpf::memlock::raise();
    let mut checks = crate::preflight::run(&needs);
    // Then what the agent would load, unless something above already stops it.
    match &cfg {
        Ok(cfg) if !checks.iter().any(|c| c.status == crate::preflight::Status::Fail) => {
            checks.extend(crate::preflight::trial::checks(cfg));
        }
        _ => {
            checks.push(crate::preflight::Check::warn("eBPF programs", "not loaded: fix the failures above first", ""))
        }
    }
    if args.json {
        let items: Vec<_> = checks
            .iter()
            .map(
                |c| serde_json::json!({"check": c.name, "status": c.status.as_str(), "detail": c.detail, "fix": c.fix}),
            )
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
    } else {
        for c in &checks {
            println!("{:<5} {:<40} {}", c.status.as_str(), c.name, c.detail);
            if !c.fix.is_empty() {
                println!("      {:<40} fix: {}", "", c.fix);
            }
        }
        if let Err(err) = &cfg {
            println!("FAIL  {:<40} {err}", "configuration");
        }
    }
    let failed = checks.iter().any(|c| c.status == crate::preflight::Status::Fail) || cfg.is_err();
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
