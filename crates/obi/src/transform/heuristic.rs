//! The `heuristic` route: a URL path with its identifier-like segments
//! replaced by the wildcard character, so that `/users/123/profile` and
//! `/users/456/profile` share the route `/users/*/profile`.
//!
//! Segment rules (the first two are OBI's; the id detector is our own):
//! 1. A segment with a byte outside `[A-Za-z-_.]` is an identifier, except
//!    that one such byte is tolerated as the second character (`v1`, `h2`).
//!    Numbers, UUIDs, hex/base64 ids with a digit, `%`-escapes and non-ASCII
//!    text all end here.
//! 2. Only the first [`MAX_PIECES`] `/`-separated pieces are kept.
//! 3. Segments that pass rule 1 go through [`looks_random`], which catches
//!    the letters-only identifiers rule 1 cannot see (see its documentation).

/// `/`-separated pieces of a path kept by the heuristic (the piece before
/// the first `/`, usually empty, counts): longer paths are cut, like OBI.
pub(crate) const MAX_PIECES: usize = 10;

/// Writes the heuristic route of `path` into `out` (cleared first).
pub(crate) fn cluster_path_into(path: &str, wildcard: char, out: &mut String) {
    out.clear();
    for (i, seg) in path.split('/').take(MAX_PIECES).enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.is_empty() {
            continue;
        }
        if has_id_chars(seg.as_bytes()) || looks_random(seg) {
            out.push(wildcard);
        } else {
            out.push_str(seg);
        }
    }
}

/// The heuristic route of `path`.
#[cfg(test)]
pub(crate) fn cluster_path(path: &str, wildcard: char) -> String {
    let mut out = String::with_capacity(path.len());
    cluster_path_into(path, wildcard, &mut out);
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'-' | b'_' | b'.')
}

/// Rule 1: a byte outside `[A-Za-z-_.]`, except a single one in second position.
fn has_id_chars(seg: &[u8]) -> bool {
    seg.iter().enumerate().any(|(i, &b)| !is_word_byte(b) && i != 1)
}

/// Segments made only of hex letters and at least this long are ids (`deadbeefcafe`).
const MIN_HEX_LETTERS_ID: usize = 8;
/// A run of letters longer than this, without any word boundary, is a token.
const MAX_WORD_LEN: usize = 32;
/// Words shorter than this are not judged: acronyms and abbreviations (`api`, `rss`, `xkcd`).
const MIN_JUDGED_WORD: usize = 5;
/// Consonants in a row that English words practically never reach (y counts as a vowel).
const MAX_CONSONANT_RUN: usize = 5;

/// Whether a segment made of letters, `-`, `_` and `.` (plus possibly one
/// digit as its second character) looks generated rather than written by a
/// person. Rules, in order:
///
/// - **hex**: 8 or more characters, all hex digits (`deadbeefcafe`);
/// - **token**: a word (see below) longer than 32 letters;
/// - **case noise**: mixed case whose camel-case split yields at least three
///   words of one or two letters after the first, and those make up more than
///   half the words (`xKqPzWmRtY`, while `getUserByID` has only two); with
///   two or more such short words, the letters are also judged as one word
///   by the next rule;
/// - **unpronounceable word**: the segment is split into words at `-`, `_`,
///   `.`, the digit and camel-case boundaries (`getUserProfile` → get, User,
///   Profile; `HTMLParser` → HTML, Parser). A word of 5 letters or more is
///   random if it has no vowel (`aeiouy`; `https` and `xhtml` excepted), six
///   consonants in a row, or if a quarter or more of its letter pairs are
///   rare in English (`qx`, `zk`, ...; see [`COMMON_NEXT`]).
///
/// On uniformly random letter strings this flags about 85% of 8-letter and
/// 95% of 16-letter strings; identifiers with digits are caught by rule 1
/// already. Common English and API words (`users`, `graphql`, `healthz`,
/// `downstream`, `XMLHttpRequest`) are kept. Anything it misses is still
/// bounded by `unmatched: low-cardinality`.
pub(crate) fn looks_random(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.len() >= MIN_HEX_LETTERS_ID && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let has_upper = b.iter().any(u8::is_ascii_uppercase);
    let has_lower = b.iter().any(u8::is_ascii_lowercase);
    let mut words = 0usize;
    let mut small_after_first = 0usize;
    let mut random_word = false;
    let mut too_long = false;
    for_each_word(b, |w| {
        if words > 0 && w.len() <= 2 {
            small_after_first += 1;
        }
        words += 1;
        too_long |= w.len() > MAX_WORD_LEN;
        random_word = random_word || unpronounceable(w);
    });
    if too_long || random_word {
        return true;
    }
    if !(has_upper && has_lower) || small_after_first < 2 {
        return false;
    }
    if small_after_first >= 3 && small_after_first * 2 > words {
        return true;
    }
    // Random case flips cut random letters into short words nobody judges:
    // judge the letters as one word instead.
    let mut letters = [0u8; MAX_WORD_LEN];
    let mut n = 0;
    for &c in b.iter().filter(|c| c.is_ascii_alphabetic()).take(MAX_WORD_LEN) {
        letters[n] = c;
        n += 1;
    }
    unpronounceable(&letters[..n])
}

/// Calls `f` with each word of `seg`: runs of letters split at non-letters
/// and at camel-case boundaries (`aB` and the `B` of `ABc`).
fn for_each_word(seg: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start: Option<usize> = None;
    for i in 0..seg.len() {
        let c = seg[i];
        if !c.is_ascii_alphabetic() {
            if let Some(s) = start.take() {
                f(&seg[s..i]);
            }
            continue;
        }
        if let Some(s) = start
            && i > s
            && c.is_ascii_uppercase()
        {
            let prev = seg[i - 1];
            let next_lower = seg.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                f(&seg[s..i]);
                start = Some(i);
                continue;
            }
        }
        if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        f(&seg[s..]);
    }
}

fn is_vowel(c: u8) -> bool {
    matches!(c.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Letter pairs seen in English: bit `j` of `COMMON_NEXT[i]` is set when
/// letter `i` followed by letter `j` occurred at least 3 times in the
/// English text of Debian 12's `/usr/share/common-licenses` (Apache-2.0,
/// Artistic, BSD, CC0, MPL, ... without the GPL family) plus a list of
/// ~400 common URL path words (`api`, `graphql`, `healthz`, `webhook`...).
/// 376 of the 676 pairs are common.
const COMMON_NEXT: [u32; 26] = [
    0x1ffbf6e, 0x11e5b91, 0x11f4d9d, 0x17e7b79, 0x3fff9ff, 0x11e4931, 0x01ef9f1, 0x31f6913, 0x2bffd7f, 0x0144011,
    0x0146911, 0x13ec93f, 0x034f957, 0x13eff7f, 0x3feffff, 0x11ed99d, 0x0100800, 0x17efd7f, 0x15ffdfd, 0x1def9bb,
    0x00ef97f, 0x0004111, 0x0466991, 0x1089195, 0x30ef911, 0x0000191,
];

fn common_pair(a: u8, b: u8) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    COMMON_NEXT[usize::from(a - b'a')] & (1 << (b - b'a')) != 0
}

/// Words without vowels that are fine anyway.
const VOWELLESS_WORDS: &[&[u8]] = &[b"https", b"xhtml"];

/// The per-word test of [`looks_random`]; `w` is letters only.
fn unpronounceable(w: &[u8]) -> bool {
    if w.len() < MIN_JUDGED_WORD {
        return false;
    }
    if !w.iter().copied().any(is_vowel) {
        return !VOWELLESS_WORDS.iter().any(|ok| w.eq_ignore_ascii_case(ok));
    }
    let mut run = 0;
    for &c in w {
        run = if is_vowel(c) { 0 } else { run + 1 };
        if run > MAX_CONSONANT_RUN {
            return true;
        }
    }
    let pairs = w.len() - 1;
    let rare = w.windows(2).filter(|p| !common_pair(p[0], p[1])).count();
    rare * 4 >= pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: &str) -> String {
        cluster_path(p, '*')
    }

    #[test]
    fn ids_with_digits_or_symbols_become_wildcards() {
        let cases = [
            ("/users/123/profile", "/users/*/profile"),
            ("/users/42", "/users/*"),
            ("/orders/550e8400-e29b-41d4-a716-446655440000", "/orders/*"),
            ("/blobs/sha256:9f86d081884c7d65", "/blobs/*"),
            ("/document/d/C2fMkAGb3E_SaFtSaF93bL-Zq/edit", "/document/d/*/edit"),
            ("/files/report%20final.pdf", "/files/*"),
            ("/u/j%C3%BCrgen", "/u/*"),
            ("/api/v1/users/7", "/api/v1/users/*"),
            ("/api/v12/users", "/api/*/users"),
            ("/i/1a", "/i/*"),
            ("/caf\u{e9}", "/*"),
            ("/ab+c", "/*"),
            // One such byte is tolerated in second position (rule 1).
            ("/a+b", "/a+b"),
            ("/p/2024-06-01", "/p/*"),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
    }

    #[test]
    fn words_are_kept() {
        for p in [
            "/",
            "/api/v1/users",
            "/v2/healthz",
            "/graphql",
            "/static/css/main.css",
            "/robots.txt",
            "/favicon.ico",
            "/.well-known/openid-configuration",
            "/api/getUserProfile",
            "/XMLHttpRequest",
            "/users/me/order_items",
            "/downstream/streams",
            "/h2/push",
            "/oauth/callback",
            "/metrics",
            "/webhooks/stripe",
        ] {
            assert_eq!(route(p), p, "{p}");
        }
    }

    #[test]
    fn letters_only_ids_are_caught() {
        for seg in [
            "deadbeefcafe",
            "ABCDEFABCDEF",
            "xKqPzWmRtYbL",
            "qwxzkvbnm",
            "bcdfghjklm",
            "zzqxjkvwpl",
            "ZmFrZUlkZW50aWZpZXI",
            "abcdefghijklmnopqrstuvwxyzabcdefghijk",
            "hgkfjdlsqpwo",
        ] {
            assert!(looks_random(seg), "{seg}");
            assert_eq!(route(&format!("/x/{seg}")), "/x/*", "{seg}");
        }
    }

    #[test]
    fn english_and_api_words_pass() {
        for w in [
            "users",
            "profile",
            "checkout",
            "strength",
            "getUserByID",
            "HTMLParser",
            "iPhone",
            "createdAt",
            "toJSON",
            "https",
            "notifications",
            "internationalization",
            "recommendations",
            "subscriptions",
            "leaderboard",
            "playlist",
            "swagger",
            "openapi",
        ] {
            assert!(!looks_random(w), "{w}");
        }
    }

    #[test]
    fn edges() {
        assert_eq!(route(""), "");
        assert_eq!(route("/"), "/");
        assert_eq!(route("//"), "//");
        assert_eq!(route("/users/"), "/users/");
        assert_eq!(route("/users//1"), "/users//*");
        assert_eq!(route("relative/123"), "relative/*");
        assert_eq!(cluster_path("/users/123", '#'), "/users/#");
        // Ten pieces at most: "" and nine segments.
        assert_eq!(route("/a/b/c/d/e/f/g/h/i/j/k/l"), "/a/b/c/d/e/f/g/h/i");
        assert_eq!(route("/1/2/3/4/5/6/7/8/9/10/11"), "/*/*/*/*/*/*/*/*/*");
    }

    #[test]
    fn word_split() {
        let mut got = Vec::new();
        for_each_word(b"getUserProfile_v2HTMLParser-x", |w| got.push(String::from_utf8_lossy(w).into_owned()));
        assert_eq!(got, ["get", "User", "Profile", "v", "HTML", "Parser", "x"]);
    }

    #[test]
    fn most_random_letter_strings_are_caught() {
        // Deterministic xorshift so the rate is stable.
        let mut s = 0x2545f4914f6cdd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (len, min_rate) in [(8usize, 0.75), (12, 0.85), (16, 0.9)] {
            let mut hits = 0;
            for _ in 0..1000 {
                let w: String = (0..len).map(|_| (b'a' + (next() % 26) as u8) as char).collect();
                hits += usize::from(looks_random(&w));
            }
            let rate = hits as f64 / 1000.0;
            assert!(rate >= min_rate, "len {len}: {rate}");
        }
    }
}
