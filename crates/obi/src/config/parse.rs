//! Scalar parsers shared by the YAML and environment layers. Every error's
//! message already contains the offending value; callers add the key (YAML
//! path or environment variable name).

use std::str::FromStr;
use std::time::Duration;

use super::{ContextPropagation, LogFormat, LogLevel, TracePrinter};

const DURATION_HINT: &str = "use a number with a unit: ns, us, ms, s, m, h; e.g. 5s, 500ms, 1m30s";

/// A scalar that does not parse; holds the value as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("invalid duration \"\": empty value ({hint})", hint = DURATION_HINT)]
    EmptyDuration,
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    NegativeDuration(String),
    #[error("invalid duration {0:?} ({hint})", hint = DURATION_HINT)]
    Duration(String),
    #[error("invalid duration {0:?}: missing unit ({hint})", hint = DURATION_HINT)]
    DurationWithoutUnit(String),
    #[error("invalid duration {input:?}: unknown unit {unit:?} ({hint})", hint = DURATION_HINT)]
    DurationUnit { input: String, unit: String },
    #[error("invalid duration {0:?}: value is too large")]
    DurationTooLarge(String),
    #[error("invalid boolean {0:?} (use true or false)")]
    Bool(String),
    #[error("invalid number {0:?} (expected an integer between 0 and {max})", max = u32::MAX)]
    U32(String),
    #[error("invalid size {0:?} (expected a number of bytes, optionally with K, KiB, M, MiB, G or GiB)")]
    ByteSize(String),
    #[error("invalid process id list {0:?} (expected e.g. 1234,5678)")]
    PidList(String),
    #[error("invalid process id {0:?} (expected a positive integer)")]
    Pid(String),
    #[error("unknown log level specified {0:?}, choices are [DEBUG, INFO, WARN, ERROR]")]
    LogLevel(String),
    #[error("unknown log format specified {0:?}, choices are [text, json]")]
    LogFormat(String),
    #[error("invalid value for trace_printer: '{0}' (valid values: disabled, text, json, json_indent, counter)")]
    TracePrinter(String),
    #[error("invalid value for context_propagation: '{0}' (valid: all, disabled, headers, http, tcp)")]
    ContextPropagation(String),
}

/// Parses a Go `time.ParseDuration` string: a sequence of decimal numbers with
/// a unit each (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `5s`, `500ms`,
/// `1m30s`, `1.5h`. A bare `0` is accepted. Negative values are rejected.
pub(crate) fn parse_go_duration(input: &str) -> Result<Duration, ParseError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseError::EmptyDuration);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(ParseError::NegativeDuration(input.to_string()));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(ParseError::Duration(input.to_string()));
        }
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(ParseError::DurationWithoutUnit(input.to_string())),
            other => return Err(ParseError::DurationUnit { input: input.to_string(), unit: other.to_string() }),
        };
        let value: f64 = num.parse().map_err(|_| ParseError::Duration(input.to_string()))?;
        total += value * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(ParseError::DurationTooLarge(input.to_string()));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Go's `strconv.ParseBool`: `1,t,T,TRUE,true,True,0,f,F,FALSE,false,False`.
pub(crate) fn parse_go_bool(input: &str) -> Result<bool, ParseError> {
    match input.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ParseError::Bool(input.to_string())),
    }
}

/// Booleans written as YAML strings: Go's set plus the YAML 1.1 spellings
/// (`yes/no/on/off`) that `gopkg.in/yaml.v3` accepts for `bool` fields.
pub(crate) fn parse_yaml_bool(input: &str) -> Result<bool, ParseError> {
    if let Ok(b) = parse_go_bool(input) {
        return Ok(b);
    }
    match input.trim() {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(false),
        _ => Err(ParseError::Bool(input.to_string())),
    }
}

/// A non-negative integer that fits in `u32`.
pub(crate) fn parse_u32(input: &str) -> Result<u32, ParseError> {
    let t = input.trim();
    t.parse::<u32>().map_err(|_| ParseError::U32(input.to_string()))
}

/// A byte size: a plain integer or one with a binary suffix
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`; `KB`/`MB`/`GB` are read as binary too).
pub(crate) fn parse_byte_size(input: &str) -> Result<u64, ParseError> {
    let t = input.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let err = || ParseError::ByteSize(input.to_string());
    if num.is_empty() {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// A comma-separated list of process ids, e.g. `1234,5678`.
pub(crate) fn parse_pid_list(input: &str) -> Result<Vec<u32>, ParseError> {
    let mut out = Vec::new();
    for part in input.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        out.push(parse_pid(p)?);
    }
    if out.is_empty() {
        return Err(ParseError::PidList(input.to_string()));
    }
    Ok(out)
}

pub(crate) fn parse_pid(input: &str) -> Result<u32, ParseError> {
    match input.trim().parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ParseError::Pid(input.to_string())),
    }
}

impl FromStr for LogLevel {
    type Err = ParseError;

    /// Case-insensitive, like Go's `slog.Level.UnmarshalText`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARN" | "WARNING" => Ok(LogLevel::Warn),
            "ERROR" => Ok(LogLevel::Error),
            _ => Err(ParseError::LogLevel(s.to_string())),
        }
    }
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

impl FromStr for LogFormat {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ParseError::LogFormat(s.to_string())),
        }
    }
}

impl FromStr for TracePrinter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" => Ok(TracePrinter::Disabled),
            "text" => Ok(TracePrinter::Text),
            "json" => Ok(TracePrinter::Json),
            "json_indent" => Ok(TracePrinter::JsonIndent),
            "counter" => Ok(TracePrinter::Counter),
            _ => Err(ParseError::TracePrinter(s.to_string())),
        }
    }
}

impl TracePrinter {
    pub(crate) fn is_enabled(self) -> bool {
        self != TracePrinter::Disabled
    }
}

impl FromStr for ContextPropagation {
    type Err = ParseError;

    /// OBI's syntax: `all`, `disabled` (or empty), or a comma list of
    /// `headers` (alias `http`) and `tcp`. The obsolete `ip` is accepted and
    /// has no effect (OBI removed IP-options injection).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut headers, mut tcp) = (false, false);
        match s.trim() {
            "all" => return Ok(ContextPropagation::All),
            "disabled" | "" => return Ok(ContextPropagation::Disabled),
            list => {
                for part in list.split(',') {
                    match part.trim() {
                        "headers" | "http" => headers = true,
                        "tcp" => tcp = true,
                        "ip" => {}
                        other => {
                            return Err(ParseError::ContextPropagation(other.to_string()));
                        }
                    }
                }
            }
        }
        Ok(match (headers, tcp) {
            (false, false) => ContextPropagation::Disabled,
            (true, false) => ContextPropagation::Headers,
            (false, true) => ContextPropagation::Tcp,
            (true, true) => ContextPropagation::All,
        })
    }
}

impl ContextPropagation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ContextPropagation::Disabled => "disabled",
            ContextPropagation::Headers => "headers",
            ContextPropagation::Tcp => "tcp",
            ContextPropagation::All => "all",
        }
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `key`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key_l = key.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = edit_distance(&key_l, c);
        let limit = (c.chars().count() / 3).max(2);
        // Prefix/suffix relations ("port" vs "open_port") are common mistakes too.
        let related = key_l.len() >= 4 && (c.contains(key_l.as_str()) || key_l.contains(c));
        if d <= limit || related {
            let score = if d <= limit { d } else { limit + 1 };
            if best.is_none_or(|(bd, _)| score < bd) {
                best = Some((score, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_go_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_go_duration("100µs").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_go_duration("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(
            parse_go_duration("2h45m10.5s").unwrap(),
            Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 10500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration(" 5s ").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn bad_go_durations() {
        assert!(parse_go_duration("5").unwrap_err().to_string().contains("missing unit"));
        assert!(parse_go_duration("5x").unwrap_err().to_string().contains("unknown unit \"x\""));
        assert!(parse_go_duration("5 s").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_go_duration("").unwrap_err().to_string().contains("empty"));
        assert!(parse_go_duration("-5s").unwrap_err().to_string().contains("negative"));
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1..5s").is_err());
        assert!(parse_go_duration("five seconds").is_err());
        assert!(parse_go_duration("5sec").unwrap_err().to_string().contains("\"sec\""));
    }

    #[test]
    fn go_bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(parse_go_bool(t).unwrap(), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!parse_go_bool(f).unwrap(), "{f}");
        }
        for bad in ["yes", "on", "tRUE", "2", ""] {
            assert!(parse_go_bool(bad).is_err(), "{bad}");
        }
        assert!(parse_yaml_bool("yes").unwrap());
        assert!(!parse_yaml_bool("off").unwrap());
    }

    #[test]
    fn sizes_and_pids() {
        assert_eq!(parse_byte_size("4096").unwrap(), 4096);
        assert_eq!(parse_byte_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_byte_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_byte_size("64 KiB").unwrap(), 64 << 10);
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("8TB").is_err());
        assert_eq!(parse_pid_list("1234, 5678").unwrap(), vec![1234, 5678]);
        assert!(parse_pid_list("12a").is_err());
        assert!(parse_pid_list("0").is_err());
        assert!(parse_pid_list(" , ").is_err());
        assert_eq!(parse_u32(" 500 ").unwrap(), 500);
        assert!(parse_u32("-1").is_err());
    }

    #[test]
    fn enums() {
        assert_eq!("debug".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("Warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert_eq!(
            "verbose".parse::<LogLevel>().unwrap_err().to_string(),
            "unknown log level specified \"verbose\", choices are [DEBUG, INFO, WARN, ERROR]"
        );
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("xml".parse::<LogFormat>().unwrap_err().to_string().contains("[text, json]"));
        assert_eq!("json_indent".parse::<TracePrinter>().unwrap(), TracePrinter::JsonIndent);
        assert_eq!("counter".parse::<TracePrinter>().unwrap(), TracePrinter::Counter);
        assert!(
            "x".parse::<TracePrinter>().unwrap_err().to_string().starts_with("invalid value for trace_printer: 'x'")
        );
        assert_eq!("headers,tcp".parse::<ContextPropagation>().unwrap(), ContextPropagation::All);
        assert_eq!("tcp".parse::<ContextPropagation>().unwrap(), ContextPropagation::Tcp);
        assert_eq!("ip".parse::<ContextPropagation>().unwrap(), ContextPropagation::Disabled);
        assert_eq!("http".parse::<ContextPropagation>().unwrap(), ContextPropagation::Headers);
        assert_eq!("".parse::<ContextPropagation>().unwrap(), ContextPropagation::Disabled);
        assert_eq!(
            "everything".parse::<ContextPropagation>().unwrap_err().to_string(),
            "invalid value for context_propagation: 'everything' (valid: all, disabled, headers, http, tcp)"
        );
    }

    #[test]
    fn suggestions() {
        let keys = ["open_ports", "exe_path", "name", "namespace", "cmd_args"];
        assert_eq!(closest("open_port", keys), Some("open_ports"));
        assert_eq!(closest("exe_pth", keys), Some("exe_path"));
        assert_eq!(closest("namespase", keys), Some("namespace"));
        assert_eq!(closest("xyzzy", keys), None);
        assert_eq!(closest("Open_Ports", keys), Some("open_ports"));
    }
}
