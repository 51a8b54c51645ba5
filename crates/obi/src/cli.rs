//! Command line.
//!
//! `obi [--config PATH]` runs the agent (same as `obi run`); `obi top` runs
//! it with a live terminal view in place of the trace printer; `obi check
//! [--json]` runs the preflight checks. Everything else is configured through
//! environment variables and the YAML file, as in OBI. Go-style flags
//! (`-config PATH`, `-config=PATH`) are accepted too, so OBI command lines keep
//! working.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

const ENV_HELP: &str = "\
Configuration is read from, in increasing priority: built-in defaults, the YAML
file (OTEL_EBPF_CONFIG_PATH, which wins over --config), environment variables.
BEYLA_X and BEYLA_OTEL_X are read when OTEL_EBPF_X is unset.

Most used environment variables:
  OTEL_EBPF_OPEN_PORT            instrument processes listening/connected on these ports (80,443,8000-8999)
  OTEL_EBPF_AUTO_TARGET_EXE      instrument executables matching this glob ('*/java')
  OTEL_EBPF_TARGET_PID           instrument these process ids (1234,5678)
  OTEL_EBPF_SYSTEM_WIDE          instrument every process (true/false)
  OTEL_SERVICE_NAME              service name of the processes selected above
  OTEL_EBPF_SERVICE_NAMES        service names by port or executable (1880=node-red,exe:influxd=influxdb)
  OTEL_EBPF_TRACE_PRINTER        print spans on stdout: disabled, text, json, json_indent, counter
  OTEL_EXPORTER_OTLP_ENDPOINT    send traces and metrics over OTLP
  OTEL_EBPF_PROMETHEUS_PORT      serve Prometheus metrics on this port
  OTEL_EBPF_LOG_LEVEL            DEBUG, INFO, WARN or ERROR
  OTEL_EBPF_LOG_FORMAT           text or json
  OTEL_EBPF_CONFIG_PATH          YAML configuration file

Full list: docs/configuration.md.";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cli {
    /// `--config` as given on the command line (before the
    /// `OTEL_EBPF_CONFIG_PATH` override, see [`crate::config::config_path`]).
    pub(crate) config: Option<PathBuf>,
    pub(crate) command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Run the agent (default when no subcommand is given).
    Run(RunArgs),
    /// Run the agent with the live terminal view.
    Top(RunArgs),
    /// Preflight checks.
    Check(CheckArgs),
}

/// Arguments of the agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunArgs {
    /// `--config` (the environment variable `OTEL_EBPF_CONFIG_PATH` wins).
    pub(crate) config: Option<PathBuf>,
}

/// Arguments of `obi check`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CheckArgs {
    /// `--json`: machine-readable report.
    pub(crate) json: bool,
    /// `--config`, so that the checks can use the agent's configuration.
    pub(crate) config: Option<PathBuf>,
}

impl RunArgs {
    /// What the flags override, for [`crate::config::load`].
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides { config_path: self.config.clone() }
    }
}

impl CheckArgs {
    /// The agent's arguments, to load the same configuration.
    pub(crate) fn run_args(&self) -> RunArgs {
        RunArgs { config: self.config.clone() }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "obi",
    display_name = "obi-rs",
    version,
    about = "obi-rs: zero-code OpenTelemetry instrumentation with eBPF (drop-in for OBI / Grafana Beyla)",
    after_long_help = ENV_HELP,
    args_conflicts_with_subcommands = false
)]
struct RawCli {
    /// YAML configuration file (OTEL_EBPF_CONFIG_PATH wins over this flag).
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<RawCommand>,
}

#[derive(Debug, Subcommand)]
enum RawCommand {
    /// Run the agent (the default).
    Run,
    /// Run the agent and show what it sees live in the terminal: rate, errors
    /// and latency per service and route, the slowest traces as trees.
    Top,
    /// Check that this host can run the agent (kernel, BTF, capabilities...).
    Check(RawCheck),
}

#[derive(Debug, Args)]
struct RawCheck {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl From<RawCli> for Cli {
    fn from(raw: RawCli) -> Self {
        let command = match raw.command {
            None | Some(RawCommand::Run) => Command::Run(RunArgs { config: raw.config.clone() }),
            Some(RawCommand::Top) => Command::Top(RunArgs { config: raw.config.clone() }),
            Some(RawCommand::Check(c)) => Command::Check(CheckArgs { json: c.json, config: raw.config.clone() }),
        };
        Cli { config: raw.config, command }
    }
}

/// Rewrites Go-style `-config PATH` / `-config=PATH` into `--config`.
/// Arguments after `--` are left alone.
pub(crate) fn normalize_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        let arg: OsString = arg.into();
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "-config" {
                Some(OsString::from("--config"))
            } else {
                s.strip_prefix("-config=").map(|rest| OsString::from(format!("--config={rest}")))
            }
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

impl Cli {
    /// Parses `args` (including the program name) after [`normalize_args`].
    #[cfg(test)]
    pub(crate) fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        RawCli::try_parse_from(normalize_args(args)).map(Cli::from)
    }

    /// Parses `args`, printing help/version/errors and exiting like clap.
    pub(crate) fn parse_from<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Cli::from(RawCli::parse_from(normalize_args(args)))
    }
}

/// Parses the process's command line (with the Go-style flag normalisation).
/// `--help`, `--version` and usage errors print and exit (status 2 for errors).
pub(crate) fn parse_from_env() -> Cli {
    Cli::parse_from(std::env::args_os())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args.iter().copied()).unwrap()
    }

    #[test]
    fn no_subcommand_runs_the_agent() {
        assert_eq!(parse(&["obi"]), Cli { config: None, command: Command::Run(RunArgs { config: None }) });
        assert_eq!(parse(&["obi", "run"]).command, Command::Run(RunArgs::default()));
    }

    #[test]
    fn config_flag_forms() {
        let want = Some(PathBuf::from("/etc/obi.yml"));
        for args in [
            &["obi", "--config", "/etc/obi.yml"][..],
            &["obi", "--config=/etc/obi.yml"],
            &["obi", "-config", "/etc/obi.yml"],
            &["obi", "-config=/etc/obi.yml"],
            &["obi", "-c", "/etc/obi.yml"],
            &["obi", "run", "--config", "/etc/obi.yml"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.config, want, "{args:?}");
            assert_eq!(cli.command, Command::Run(RunArgs { config: want.clone() }), "{args:?}");
        }
    }

    #[test]
    fn top_subcommand() {
        assert_eq!(parse(&["obi", "top"]).command, Command::Top(RunArgs::default()));
        let cli = parse(&["obi", "top", "-c", "x.yml"]);
        assert_eq!(cli.command, Command::Top(RunArgs { config: Some("x.yml".into()) }));
    }

    #[test]
    fn check_subcommand() {
        let cli = parse(&["obi", "check", "--json"]);
        assert_eq!(cli.command, Command::Check(CheckArgs { json: true, config: None }));
        let cli = parse(&["obi", "-config", "x.yml", "check"]);
        assert_eq!(cli.command, Command::Check(CheckArgs { json: false, config: Some("x.yml".into()) }));
        let cli = parse(&["obi", "check", "--config", "x.yml"]);
        assert_eq!(cli.command, Command::Check(CheckArgs { json: false, config: Some("x.yml".into()) }));
        if let Command::Check(c) = cli.command {
            assert_eq!(c.run_args().config, Some(PathBuf::from("x.yml")));
        }
    }

    #[test]
    fn normalisation_leaves_other_args_alone() {
        let out = normalize_args(["obi", "-configx", "--", "-config"]);
        assert_eq!(out, vec![OsString::from("obi"), "-configx".into(), "--".into(), "-config".into()]);
    }

    #[test]
    fn errors_and_version() {
        let e = Cli::try_parse_from(["obi", "--bogus"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["obi", "--version"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(e.to_string(), format!("obi-rs {}\n", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn help_lists_env_vars() {
        let help = RawCli::command().render_long_help().to_string();
        for var in
            ["OTEL_EBPF_OPEN_PORT", "OTEL_EBPF_AUTO_TARGET_EXE", "OTEL_EBPF_TRACE_PRINTER", "OTEL_EBPF_CONFIG_PATH"]
        {
            assert!(help.contains(var), "{var} missing from help:\n{help}");
        }
        assert!(help.contains("Usage: obi"), "{help}");
        RawCli::command().debug_assert();
    }
}
