//! Port sets such as `80,443,8000-8999` (`OTEL_EBPF_OPEN_PORT`, `open_port`,
//! `discovery.instrument[].open_ports`).
//!
//! The accepted syntax is OBI's (`pkg/appolly/services/criteria.go`):
//! `^\s*\d+\s*(-\s*\d+\s*)?(,\s*\d+\s*(-\s*\d+\s*)?)*$`, i.e. a comma-separated
//! list of ports and inclusive ranges, with blanks allowed around every number.
//! Unlike OBI we also reject ranges whose start is greater than their end
//! (OBI accepts `9000-8000` and then never matches anything), port numbers
//! above 65535 and port 0.

use std::fmt;
use std::str::FromStr;

/// A set of TCP/UDP ports: single ports are stored as `(p, p)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PortEnum {
    /// Inclusive ranges, in the order they were written.
    pub(crate) ranges: Vec<(u16, u16)>,
}

/// Why a port set could not be parsed. `Display` reproduces OBI's message and
/// appends the specific reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid port range {input:?}. Must be a comma-separated list of numeric ports or port ranges (e.g. 8000-8999): {reason}"
)]
pub(crate) struct PortEnumError {
    pub(crate) input: String,
    pub(crate) reason: PortSetProblem,
}

/// What is wrong in a port set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PortSetProblem {
    #[error("the value is empty")]
    Empty,
    #[error("empty entry between commas")]
    EmptyEntry,
    #[error("{0:?} has more than one '-'")]
    TooManyDashes(String),
    #[error("missing port number around '-'")]
    MissingPort,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("port 0 is not a valid port (use 1-65535)")]
    PortZero,
    #[error("port {0} is out of range (use 1-65535)")]
    OutOfRange(String),
    #[error("range start {start} is greater than range end {end}")]
    Reversed { start: u16, end: u16 },
}

impl PortEnum {
    /// Parses OBI's port-enumeration syntax.
    pub(crate) fn parse(input: &str) -> Result<PortEnum, PortEnumError> {
        let err = |reason: PortSetProblem| PortEnumError { input: input.to_string(), reason };
        if input.trim().is_empty() {
            return Err(err(PortSetProblem::Empty));
        }
        let mut ranges = Vec::new();
        for entry in input.split(',') {
            if entry.trim().is_empty() {
                return Err(err(PortSetProblem::EmptyEntry));
            }
            let mut parts = entry.split('-');
            let start_txt = parts.next().unwrap_or_default();
            let end_txt = parts.next();
            if parts.next().is_some() {
                return Err(err(PortSetProblem::TooManyDashes(entry.trim().to_string())));
            }
            let start = parse_port(start_txt).map_err(err)?;
            let end = match end_txt {
                Some(t) => parse_port(t).map_err(err)?,
                None => start,
            };
            if start > end {
                return Err(err(PortSetProblem::Reversed { start, end }));
            }
            ranges.push((start, end));
        }
        Ok(PortEnum { ranges })
    }

    /// Whether `port` is in any of the ranges.
    pub(crate) fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(start, end)| start <= port && port <= end)
    }
}

fn parse_port(text: &str) -> Result<u16, PortSetProblem> {
    let t = text.trim();
    if t.is_empty() {
        return Err(PortSetProblem::MissingPort);
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSetProblem::NotANumber(t.to_string()));
    }
    match t.parse::<u32>() {
        Ok(0) => Err(PortSetProblem::PortZero),
        Ok(p) if p <= u16::MAX as u32 => Ok(p as u16),
        _ => Err(PortSetProblem::OutOfRange(t.to_string())),
    }
}

impl FromStr for PortEnum {
    type Err = PortEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortEnum::parse(s)
    }
}

/// Prints the canonical form, e.g. `80,443,8000-8999`.
impl fmt::Display for PortEnum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_ports_and_ranges() {
        let p = PortEnum::parse("80,443,8000-8999").unwrap();
        assert_eq!(p.ranges, vec![(80, 80), (443, 443), (8000, 8999)]);
        assert!(p.contains(80));
        assert!(p.contains(443));
        assert!(p.contains(8000));
        assert!(p.contains(8500));
        assert!(p.contains(8999));
        assert!(!p.contains(81));
        assert!(!p.contains(9000));
        assert!(!p.contains(7999));
        assert_eq!(p.to_string(), "80,443,8000-8999");
    }

    #[test]
    fn tolerates_whitespace_like_obi() {
        let p = PortEnum::parse("  80 , 443 ,8000 - 8999 ").unwrap();
        assert_eq!(p.ranges, vec![(80, 80), (443, 443), (8000, 8999)]);
        let p = PortEnum::parse("8080").unwrap();
        assert_eq!(p.ranges, vec![(8080, 8080)]);
        let p = PortEnum::parse("1-65535").unwrap();
        assert!(p.contains(1) && p.contains(65535));
    }

    #[test]
    fn rejects_reversed_range() {
        let e = PortEnum::parse("9000-8000").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid port range \"9000-8000\". Must be a comma-separated list of numeric ports or port ranges \
             (e.g. 8000-8999): range start 9000 is greater than range end 8000"
        );
    }

    #[test]
    fn rejects_non_numbers() {
        let e = PortEnum::parse("abc").unwrap_err();
        assert!(e.to_string().starts_with("invalid port range \"abc\". Must be a comma-separated list"), "{e}");
        assert!(e.reason.to_string().contains("\"abc\" is not a number"), "{e}");
        assert!(PortEnum::parse("80,http").is_err());
        assert!(PortEnum::parse("-80").is_err());
        assert!(PortEnum::parse("+80").is_err());
        assert!(PortEnum::parse("80-").is_err());
        assert!(PortEnum::parse("80-90-100").is_err());
        assert!(PortEnum::parse("8 0").is_err());
    }

    #[test]
    fn rejects_out_of_range_and_empty() {
        let e = PortEnum::parse("70000").unwrap_err();
        assert!(e.reason.to_string().contains("out of range"), "{e}");
        assert!(PortEnum::parse("99999999999999999999").unwrap_err().reason.to_string().contains("out of range"));
        assert!(PortEnum::parse("0").unwrap_err().reason.to_string().contains("port 0"));
        assert!(PortEnum::parse("").unwrap_err().reason.to_string().contains("empty"));
        assert!(PortEnum::parse("   ").unwrap_err().reason.to_string().contains("empty"));
        assert!(PortEnum::parse("80,,90").unwrap_err().reason.to_string().contains("empty"));
        assert!(PortEnum::parse("80,").unwrap_err().reason.to_string().contains("empty"));
    }
}
