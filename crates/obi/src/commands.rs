//! The `obi` commands: run the agent, or check whether this machine can
//! run it.

use std::process::ExitCode;

use crate::cli::{CheckArgs, Command};
use crate::config::LogLevel;

/// Parses the command line and runs the command it names.
pub fn main() -> ExitCode {
    let cli = crate::cli::parse_from_env();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Check(args) => check(&args),
    }
}

fn run(args: &crate::cli::RunArgs) -> ExitCode {
    let cfg = match crate::config::load_from_process_env(&args.overrides()) {
        Ok(cfg) => cfg,
        Err(err) => {
            print!(
                "{}",
                crate::logging::text_line(LogLevel::Error, "wrong configuration", &[("error", &err.to_string())])
            );
            return ExitCode::from(2);
        }
    };
    crate::logging::init(cfg.log_level, cfg.log_format);
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
    let checks = crate::preflight::run(&needs);
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
