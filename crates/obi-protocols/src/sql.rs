//! SQL text as database spans show it, for every SQL wire protocol: the
//! statement with its literals replaced by `?` (or kept, when configured,
//! except passwords), its operation (`SELECT`) and, when the statement
//! names exactly one, its table.
//!
//! A small lexer, not a parser: it knows strings, quoted identifiers,
//! dollar-quoted bodies, numbers, comments and words, which is what
//! replacing literals needs, and reads the table from the first words.

/// Longest query text kept, in bytes.
pub const MAX_TEXT: usize = 4096;

/// Quoting rules of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `"..."` is an identifier; `$tag$...$tag$` and `E'...'` are strings.
    Postgres,
    /// `"..."` is a string (default SQL mode); `` `...` `` is an identifier; `\` escapes.
    MySql,
}

/// `sql` as query text: literals are `?` unless `keep_literals`; a password
/// (`PASSWORD '...'`, `IDENTIFIED BY '...'`) is `?` always. Comments and
/// whitespace are kept as they are. At most [`MAX_TEXT`] bytes are written.
pub fn query_text(sql: &str, dialect: Dialect, keep_literals: bool, out: &mut String) {
    let b = sql.as_bytes();
    let mut i = 0;
    // The last two words, upper-cased, to spot the password that follows.
    let mut words: [&str; 2] = ["", ""];
    while i < b.len() && out.len() < MAX_TEXT {
        let c = b[i];
        let rest = &sql[i..];
        let secret = words[1].eq_ignore_ascii_case("PASSWORD")
            || (words[0].eq_ignore_ascii_case("IDENTIFIED") && words[1].eq_ignore_ascii_case("BY"));
        let literal_end = match c {
            b'\'' => Some(quoted_end(b, i, b'\'', dialect == Dialect::MySql)),
            b'"' if dialect == Dialect::MySql => Some(quoted_end(b, i, b'"', true)),
            b'e' | b'E' if dialect == Dialect::Postgres && b.get(i + 1) == Some(&b'\'') && !word_before(b, i) => {
                Some(quoted_end(b, i + 1, b'\'', true))
            }
            b'$' if dialect == Dialect::Postgres => dollar_end(rest).map(|n| i + n),
            b'0'..=b'9' if !word_before(b, i) => Some(number_end(b, i)),
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) && !word_before(b, i) => Some(number_end(b, i)),
            _ => None,
        };
        if let Some(end) = literal_end {
            if keep_literals && !secret {
                out.push_str(&sql[i..end]);
            } else {
                out.push('?');
            }
            words = [words[1], "?"];
            i = end;
            continue;
        }
        let end = match c {
            b'"' => quoted_end(b, i, b'"', false),
            b'`' => quoted_end(b, i, b'`', false),
            b'-' if rest.starts_with("--") => rest.find('\n').map_or(b.len(), |n| i + n),
            b'/' if rest.starts_with("/*") => rest[2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2),
            _ if is_word(c) => {
                let end = i + rest.bytes().take_while(|&c| is_word(c) || c == b'$').count();
                words = [words[1], &sql[i..end]];
                end
            }
            _ => i + rest.chars().next().map_or(1, char::len_utf8),
        };
        out.push_str(&sql[i..end]);
        i = end;
    }
    if out.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Whether `b[i]` continues a word (`t1`, `$1`): then it is no literal.
fn word_before(b: &[u8], i: usize) -> bool {
    i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'$')
}

/// End (exclusive) of a quoted run opened at `b[start]`; a doubled quote is
/// an escaped one, and so is a backslash-escaped one when `backslash`.
fn quoted_end(b: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            c if c == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// Length of a `$tag$...$tag$` string at the start of `s` (not `$1`).
fn dollar_end(s: &str) -> Option<usize> {
    let tag_len = 1 + s[1..].bytes().take_while(|&c| c.is_ascii_alphanumeric() || c == b'_').count();
    if s.as_bytes().get(tag_len) != Some(&b'$') || s.as_bytes().get(1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &s[..=tag_len];
    let body = &s[tag.len()..];
    Some(body.find(tag).map_or(s.len(), |n| tag.len() + n + tag.len()))
}

fn number_end(b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        let exponent_sign = (c == b'+' || c == b'-') && matches!(b[i - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// The words of a statement, skipping comments, whitespace and parentheses.
fn words(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
            if let Some(r) = rest.strip_prefix("--") {
                rest = r.find('\n').map_or("", |n| &r[n..]);
            } else if let Some(r) = rest.strip_prefix("/*") {
                rest = r.find("*/").map_or("", |n| &r[n + 2..]);
            } else {
                break;
            }
        }
        if rest.is_empty() {
            return None;
        }
        let len = match rest.as_bytes()[0] {
            b'"' | b'`' => quoted_end(rest.as_bytes(), 0, rest.as_bytes()[0], false),
            _ => rest
                .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
                .unwrap_or(rest.len())
                .max(1),
        };
        let (w, r) = rest.split_at(len.min(rest.len()));
        rest = r;
        Some(w)
    })
}

/// The operation of a statement: its first word, upper-cased (`SELECT`,
/// `INSERT`, `BEGIN`); `None` if it does not start with a word.
pub fn operation(sql: &str) -> Option<String> {
    let w = words(sql).next()?;
    w.bytes().all(|c| c.is_ascii_alphabetic()).then(|| w.to_ascii_uppercase())
}

/// The table a statement works on, when its first words name exactly one:
/// `SELECT ... FROM t` (no join, no subquery, no second table),
/// `INSERT INTO t`, `UPDATE t`, `DELETE FROM t`, `COPY t`, `TRUNCATE t`,
/// `CREATE|DROP|ALTER TABLE t`. Quotes are removed.
pub fn table(sql: &str) -> Option<String> {
    let mut w = words(sql);
    let op = w.next()?.to_ascii_uppercase();
    let is = |x: &str, k: &str| x.eq_ignore_ascii_case(k);
    let name = match op.as_str() {
        "SELECT" => {
            let mut w = w.skip_while(|x| !is(x, "FROM"));
            w.next()?;
            let t = w.next()?;
            if is(t, "SELECT") || is(t, "LATERAL") {
                return None;
            }
            // A second table, a join or a subquery: not one table.
            let mut rest = w.take_while(|x| !x.ends_with(';') && *x != ";");
            if rest.any(|x| x == "," || is(x, "JOIN") || is(x, "FROM") || is(x, "SELECT")) {
                return None;
            }
            t
        }
        "INSERT" | "DELETE" => {
            let mut w =
                w.skip_while(|x| is(x, "LOW_PRIORITY") || is(x, "DELAYED") || is(x, "IGNORE") || is(x, "QUICK"));
            let kw = w.next()?;
            if !(is(kw, "INTO") || is(kw, "FROM")) {
                return None;
            }
            w.next()?
        }
        "UPDATE" => w.find(|x| !is(x, "ONLY") && !is(x, "LOW_PRIORITY") && !is(x, "IGNORE"))?,
        "COPY" => w.next()?,
        "TRUNCATE" => w.find(|x| !is(x, "TABLE") && !is(x, "ONLY"))?,
        "CREATE" | "DROP" | "ALTER" => {
            let mut w = w.skip_while(|x| is(x, "TEMP") || is(x, "TEMPORARY") || is(x, "UNLOGGED"));
            if !is(w.next()?, "TABLE") {
                return None;
            }
            w.find(|x| !is(x, "IF") && !is(x, "NOT") && !is(x, "EXISTS") && !is(x, "ONLY"))?
        }
        _ => return None,
    };
    let name = name.trim_end_matches(';');
    let ok = !name.is_empty()
        && name.bytes().all(|c| is_word(c) || matches!(c, b'.' | b'"' | b'`'))
        && !name.as_bytes()[0].is_ascii_digit();
    ok.then(|| name.replace(['"', '`'], ""))
}

#[cfg(test)]
mod tests;
