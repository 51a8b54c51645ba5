//! Go formatting helpers, so printed output matches OBI byte for byte.

use std::fmt::{self, Write as _};

/// Formats a duration in nanoseconds exactly like Go's `time.Duration.String()`
/// (non-negative durations only): `0s`, `850ns`, `1.5µs`, `17.069032ms`,
/// `2m3.4s`, `1h0m0s`.
#[cfg(test)]
pub(crate) fn go_duration(ns: u64) -> String {
    GoDuration(ns).to_string()
}

/// [`go_duration`] as a `Display` value, to format without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub u64);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let start = format_duration(&mut buf, self.0);
        // Only ASCII digits, unit letters and the two bytes of U+00B5 were written.
        f.write_str(std::str::from_utf8(&buf[start..]).map_err(|_| fmt::Error)?)
    }
}

const MICROSECOND: u64 = 1_000;
const MILLISECOND: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;

/// Go's `Duration.format`: fills `buf` from the end, returns where the text starts.
/// The longest output (`u64::MAX` ns = `5124095h34m33.709551615s`) is 24 bytes.
fn format_duration(buf: &mut [u8; 32], mut u: u64) -> usize {
    let mut w = buf.len();
    if u < SECOND {
        // Below one second Go uses a smaller unit: 1.2ms, 12.5µs, 850ns.
        w -= 1;
        buf[w] = b's';
        w -= 1;
        let prec = if u == 0 {
            buf[w] = b'0';
            return w;
        } else if u < MICROSECOND {
            buf[w] = b'n';
            0
        } else if u < MILLISECOND {
            // U+00B5 MICRO SIGN, as Go writes it: 0xC2 0xB5.
            w -= 1;
            buf[w..w + 2].copy_from_slice("\u{b5}".as_bytes());
            3
        } else {
            buf[w] = b'm';
            6
        };
        let (nw, nu) = fmt_frac(&mut buf[..w], u, prec);
        fmt_int(&mut buf[..nw], nu)
    } else {
        w -= 1;
        buf[w] = b's';
        (w, u) = fmt_frac(&mut buf[..w], u, 9);
        // u is now whole seconds.
        w = fmt_int(&mut buf[..w], u % 60);
        u /= 60;
        if u > 0 {
            // Whole minutes.
            w -= 1;
            buf[w] = b'm';
            w = fmt_int(&mut buf[..w], u % 60);
            u /= 60;
            if u > 0 {
                // Whole hours; Go stops there since days vary in length.
                w -= 1;
                buf[w] = b'h';
                w = fmt_int(&mut buf[..w], u);
            }
        }
        w
    }
}

/// Go's `fmtFrac`: writes the `prec` low decimal digits of `v` as a fraction
/// with trailing zeros (and the dot, when all are zero) omitted, at the end of
/// `buf`. Returns the new start and `v / 10^prec`.
fn fmt_frac(buf: &mut [u8], mut v: u64, prec: usize) -> (usize, u64) {
    let mut w = buf.len();
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            w -= 1;
            buf[w] = b'0' + digit;
        }
        v /= 10;
    }
    if print {
        w -= 1;
        buf[w] = b'.';
    }
    (w, v)
}

/// Go's `fmtInt`: writes `v` in decimal at the end of `buf`, returns the new start.
fn fmt_int(buf: &mut [u8], mut v: u64) -> usize {
    let mut w = buf.len();
    if v == 0 {
        w -= 1;
        buf[w] = b'0';
    } else {
        while v > 0 {
            w -= 1;
            buf[w] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    w
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the
/// shortest exact digits, in exponent form below 1e-4 and from 1e+06 on
/// (`0.005`, `10`, `1e+06`, `1.5e-05`), `+Inf`, `-Inf`, `NaN`. Prometheus
/// clients and slog print floats this way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GoFloat(pub f64);

impl fmt::Display for GoFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        }
        if v == 0.0 {
            return f.write_str(if v.is_sign_negative() { "-0" } else { "0" });
        }
        // Rust's `{:e}` gives the same shortest digits; only the exponent
        // decides the form, and Go pads it to two digits with a sign.
        let mut e = ExpBuf::default();
        let _ = write!(e, "{v:e}");
        let (mantissa, exp) = e.as_str().split_once('e').ok_or(fmt::Error)?;
        let exp: i32 = exp.parse().map_err(|_| fmt::Error)?;
        if (-4..6).contains(&exp) {
            write!(f, "{v}")
        } else {
            write!(f, "{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
        }
    }
}

/// Room for `{:e}` of any f64 (at most 24 bytes: `-2.2250738585072014e-308`),
/// so formatting a float does not allocate.
#[derive(Default)]
struct ExpBuf {
    buf: [u8; 32],
    len: usize,
}

impl ExpBuf {
    fn as_str(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for ExpBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;

    #[test]
    fn matches_go_duration_string() {
        // Expected values follow Go's time.Duration.String() (see time/time.go).
        let table: &[(u64, &str)] = &[
            (0, "0s"),
            (NS, "1ns"),
            (2 * NS, "2ns"),
            (850 * NS, "850ns"),
            (999 * NS, "999ns"),
            (US, "1µs"),
            (US + 1, "1.001µs"),
            (1500 * NS, "1.5µs"),
            (12_500 * NS, "12.5µs"),
            (20 * US, "20µs"),
            (25 * US, "25µs"),
            (999_999 * NS, "999.999µs"),
            (MS, "1ms"),
            (MS + 1, "1.000001ms"),
            (1_500_000 * NS, "1.5ms"),
            (5_976_471 * NS, "5.976471ms"),
            (17_069_032 * NS, "17.069032ms"),
            (15_402_728 * NS, "15.402728ms"),
            (100 * MS, "100ms"),
            (999_999_999 * NS, "999.999999ms"),
            (S, "1s"),
            (S + 1, "1.000000001s"),
            (1_500 * MS, "1.5s"),
            (2 * S + 200 * MS, "2.2s"),
            (59 * S, "59s"),
            (MIN, "1m0s"),
            (MIN + 500 * MS, "1m0.5s"),
            (2 * MIN + 3 * S + 400 * MS, "2m3.4s"),
            (59 * MIN + 59 * S, "59m59s"),
            (H, "1h0m0s"),
            (H + 30 * MIN, "1h30m0s"),
            (H + 2 * MIN + 3 * S + 4, "1h2m3.000000004s"),
            (100 * H + 10 * S + 10 * MS, "100h0m10.01s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
            (u64::MAX, "5124095h34m33.709551615s"),
        ];
        for &(ns, want) in table {
            assert_eq!(go_duration(ns), want, "go_duration({ns})");
            assert_eq!(format!("{}", GoDuration(ns)), want);
        }
    }

    #[test]
    fn matches_go_format_float_g() {
        // Expected values follow Go's strconv.FormatFloat(v, 'g', -1, 64).
        let table: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (0.005, "0.005"),
            (0.25, "0.25"),
            (1.0, "1"),
            (-5.5, "-5.5"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (-2.2250738585072014e-308, "-2.2250738585072014e-308"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for &(v, want) in table {
            assert_eq!(GoFloat(v).to_string(), want, "GoFloat({v:?})");
        }
    }

    #[test]
    fn micro_sign_is_u00b5() {
        let s = go_duration(1500);
        assert_eq!(s.as_bytes(), b"1.5\xc2\xb5s");
        assert!(s.contains('\u{00b5}'));
        assert!(!s.contains('\u{03bc}'));
    }
}
