//! Go formatting helpers, so printed output matches OBI byte for byte.

use std::fmt;

/// Formats a duration in nanoseconds exactly like Go's `time.Duration.String()`
/// (non-negative durations only): `0s`, `850ns`, `1.5µs`, `17.069032ms`,
/// `2m3.4s`, `1h0m0s`.
pub fn go_duration(ns: u64) -> String {
    GoDuration(ns).to_string()
}

/// [`go_duration`] as a `Display` value, to format without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub u64);

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
    fn micro_sign_is_u00b5() {
        let s = go_duration(1500);
        assert_eq!(s.as_bytes(), b"1.5\xc2\xb5s");
        assert!(s.contains('\u{00b5}'));
        assert!(!s.contains('\u{03bc}'));
    }
}
