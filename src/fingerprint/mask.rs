//! Masking: a message's variable parts (numbers, ids, addresses, quoted values,
//! durations, sizes, timestamps) become typed placeholders, so that two
//! occurrences of one problem share a template.
//!
//! This file owns the token rules and the placeholder table. It must not keep
//! state between messages, allocate per message beyond the caller's buffer, or
//! know about patterns, events or the miner.
//!
//! The masker is one pass of a hand-written scanner, not a chain of regex
//! replacements: it jumps from word to word, and only a word (or a quote, a
//! `-`, a `[`, a `:` or a `?`) can start a placeholder, so most bytes are
//! looked at once. Placeholders are recognised by the shape of the text at a
//! word start; a word that is not recognised as a whole is copied as is, which
//! is why `utf8`, `x86_64`, `sha256`, `v2` and `log4j` stay words. Cut points
//! are always at ASCII bytes, so the output is valid UTF-8 whatever the input.

/// Integers, decimals, negative numbers, `0x` hex, dotted versions, exponents.
pub const NUM: &str = "<num>";
/// A run of ≥ 8 hex digits with at least one digit and one letter (shas, request ids).
pub const HEX: &str = "<hex>";
pub const UUID: &str = "<uuid>";
/// IPv4 (optional `:port` or `/prefix`), IPv6 (optional `[...]:port`).
pub const IP: &str = "<ip>";
/// The query (and fragment) of a URL or of a request path: `?` stays, the rest is masked.
pub const QUERY: &str = "<query>";
pub const EMAIL: &str = "<email>";
/// A `'...'` or `"..."` string on one line.
pub const STR: &str = "<str>";
pub const DURATION: &str = "<duration>";
pub const SIZE: &str = "<size>";
/// A date, a time of day, or both (RFC 3339, `2026-11-22 10:00:00,123`, `Nov 22 10:00:00`).
pub const TS: &str = "<ts>";

/// Appends `message` to `out` with its variable parts masked.
pub fn mask(message: &str, out: &mut String) {
    let b = message.as_bytes();
    let mut s = Scan {
        b,
        at: memchr::memchr(b'@', b),
        url: false,
        token_start: 0,
    };
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let (start, step) = if is_word(b[i]) {
            (i, s.word(i))
        } else if let Some(found) = s.punct(i) {
            found
        } else {
            i += 1;
            continue;
        };
        match step {
            Word::Mask(end, ph) => {
                out.push_str(&message[copied..start]);
                out.push_str(ph);
                copied = end;
                i = end;
            }
            Word::Literal(end) => i = end,
        }
    }
    out.push_str(&message[copied..]);
}

/// The masked form of `message`, in a new string.
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    mask(message, &mut out);
    out
}

/// What the text at a scan position is.
enum Word {
    /// A placeholder, up to this end.
    Mask(usize, &'static str),
    /// Text to copy as it is; scanning resumes at this end.
    Literal(usize),
}

struct Scan<'a> {
    b: &'a [u8],
    /// The next `@` at or after the scan position, if any: e-mail is only tried when one is ahead.
    at: Option<usize>,
    /// Inside a URL (after `scheme://`, until whitespace): `?` starts its query.
    url: bool,
    /// Where the current whitespace-separated token starts: a request path's `?` starts a query too.
    token_start: usize,
}

impl Scan<'_> {
    /// A word starts at `i` (the byte before it, if any, is not a word byte).
    fn word(&mut self, i: usize) -> Word {
        let b = self.b;
        let we = word_end(b, i);
        if let Some(end) = self.email(i) {
            return Word::Mask(end, EMAIL);
        }
        if b[i].is_ascii_digit() {
            return numeric(b, i, we);
        }
        if b[we..].starts_with(b"://") {
            self.url = true;
            return Word::Literal(we + 3);
        }
        if we - i == 3 && b.get(we) == Some(&b' ') && is_month(&b[i..we]) {
            if let Some(end) = syslog_time(b, we) {
                return Word::Mask(end, TS);
            }
        }
        if is_hex(b[i]) {
            if let Some(w) = hex_led(b, i, we) {
                return w;
            }
        }
        Word::Literal(we)
    }

    /// A non-word byte at `i`: where a placeholder (or text to keep) that starts
    /// with punctuation starts, and what it is; `None` for a plain byte.
    fn punct(&mut self, i: usize) -> Option<(usize, Word)> {
        let b = self.b;
        let after_word = i > 0 && is_word(b[i - 1]);
        let mask = |end: usize, ph| Some((i, Word::Mask(end, ph)));
        match b[i] {
            b'"' | b'\'' if !after_word => {
                let end = quoted(b, i)?;
                // `"user":` and `'user':` are keys of JSON or a Python dict, not values.
                match b.get(end) {
                    Some(b':') => Some((i, Word::Literal(end))),
                    _ => mask(end, STR),
                }
            }
            b'-' if !after_word && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                match numeric(b, i + 1, word_end(b, i + 1)) {
                    Word::Mask(end, ph) if matches!(ph, NUM | DURATION | SIZE) => mask(end, ph),
                    _ => None,
                }
            }
            b'[' => mask(bracketed_ipv6(b, i)?, IP),
            b':' if !after_word && b.get(i + 1) == Some(&b':') && (i == 0 || b[i - 1] != b':') => {
                mask(ipv6(b, i)?, IP)
            }
            b'?' if self.url || b[self.token_start] == b'/' => {
                self.url = false;
                let end = query_end(b, i + 1);
                (end > i + 1).then_some((i + 1, Word::Mask(end, QUERY)))
            }
            c if c.is_ascii_whitespace() => {
                self.url = false;
                self.token_start = i + 1;
                None
            }
            _ => None,
        }
    }

    /// An e-mail address starting at `i`, if the next `@` ends its local part.
    fn email(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let mut at = self.at?;
        if at < i {
            at = i + memchr::memchr(b'@', &b[i..])?;
            self.at = Some(at);
        }
        // Only a local part that starts here: `a.b@c.d` is tried at `a`, not again at `b`.
        if at == i || (i > 0 && is_local(b[i - 1])) || !b[i..at].iter().all(|&c| is_local(c)) {
            return None;
        }
        let mut j = at + 1;
        let mut labels = 0;
        let mut last_label_alpha;
        loop {
            let s = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
                j += 1;
            }
            if j == s {
                return None;
            }
            labels += 1;
            last_label_alpha = j - s >= 2 && b[s..j].iter().all(u8::is_ascii_alphabetic);
            if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_alphanumeric) {
                j += 1;
            } else {
                break;
            }
        }
        (labels >= 2 && last_label_alpha && !b.get(j).copied().is_some_and(is_word)).then_some(j)
    }
}

/// A word that starts with a digit: timestamp, address, uuid, number with or without a unit, hex id.
fn numeric(b: &[u8], i: usize, we: usize) -> Word {
    let len = we - i;
    let next = b.get(we).copied();
    let mask = |end: Option<usize>, ph| end.map(|e| Word::Mask(e, ph));
    let special = match next {
        Some(b'-') if len == 8 => mask(uuid(b, i), UUID),
        Some(b'-' | b'/') if len == 4 => mask(date_time(b, i), TS),
        Some(b':') if len <= 2 => mask(time(b, i, true), TS).or_else(|| mask(ipv6(b, i), IP)),
        Some(b':') if len <= 4 => mask(ipv6(b, i), IP),
        Some(b'.') if len <= 3 => mask(ipv4(b, i), IP),
        _ => None,
    };
    if let Some(w) = special {
        return w;
    }
    if len > 2 && b[i] == b'0' && b[i + 1] | 0x20 == b'x' && b[i + 2..we].iter().all(|&c| is_hex(c))
    {
        return Word::Mask(we, NUM);
    }
    let num_end = number_end(b, i);
    let suffix_end = word_end(b, num_end);
    let suffix = &b[num_end..suffix_end];
    if suffix.is_empty() {
        return Word::Mask(num_end, NUM);
    }
    if let Some(end) = exponent(b, num_end) {
        return Word::Mask(end, NUM);
    }
    if let Some(end) = duration_end(b, num_end) {
        return Word::Mask(end, DURATION);
    }
    if SIZE_UNITS.contains(&suffix) {
        return Word::Mask(suffix_end, SIZE);
    }
    // `5f3a9c1e`: a hex id that happens to start with a digit.
    if suffix_end == we && is_hex_id(&b[i..we]) {
        return Word::Mask(we, HEX);
    }
    Word::Literal(suffix_end)
}

/// A word that starts with a hex letter: uuid, IPv6 (`fe80::1`) or hex id, if it is one.
fn hex_led(b: &[u8], i: usize, we: usize) -> Option<Word> {
    let len = we - i;
    match b.get(we) {
        Some(b'-') if len == 8 => return uuid(b, i).map(|e| Word::Mask(e, UUID)),
        Some(b':') if len <= 4 => {
            if let Some(e) = ipv6(b, i) {
                return Some(Word::Mask(e, IP));
            }
        }
        _ => {}
    }
    is_hex_id(&b[i..we]).then_some(Word::Mask(we, HEX))
}

/// Digits, then any `.digits` groups (a decimal, or a version like `1.2.3`).
fn number_end(b: &[u8], i: usize) -> usize {
    let mut j = digits_end(b, i);
    while b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j = digits_end(b, j + 1);
    }
    j
}

/// `e10`, `E-3`, `e+7` right after a number: where the exponent ends, if it is one.
fn exponent(b: &[u8], j: usize) -> Option<usize> {
    if b.get(j)? | 0x20 != b'e' {
        return None;
    }
    let mut k = j + 1;
    if matches!(b.get(k), Some(b'+' | b'-')) {
        k += 1;
    }
    let end = digits_end(b, k);
    (end > k && !b.get(end).copied().is_some_and(is_word)).then_some(end)
}

const DURATION_UNITS: [&[u8]; 15] = [
    b"ns",
    b"us",
    "µs".as_bytes(),
    "μs".as_bytes(),
    b"ms",
    b"s",
    b"sec",
    b"secs",
    b"m",
    b"min",
    b"mins",
    b"h",
    b"hr",
    b"hrs",
    b"d",
];

const SIZE_UNITS: [&[u8]; 25] = [
    b"B", b"KB", b"kB", b"MB", b"GB", b"TB", b"PB", b"KiB", b"MiB", b"GiB", b"TiB", b"PiB", b"Ki",
    b"Mi", b"Gi", b"Ti", b"K", b"k", b"M", b"G", b"T", b"kb", b"mb", b"gb", b"tb",
];

/// A unit, or units with numbers between them (`ms`, `m30s`, `h2m3.5s`) at `j`, right after
/// a number: where the duration ends, if it is one.
fn duration_end(b: &[u8], mut j: usize) -> Option<usize> {
    loop {
        let unit_end = j + b[j..]
            .iter()
            .take_while(|&&c| is_word(c) && !c.is_ascii_digit())
            .count();
        if !DURATION_UNITS.contains(&&b[j..unit_end]) {
            return None;
        }
        // The unit took every letter: what follows is a digit (another part) or not a word byte.
        if !b.get(unit_end).is_some_and(u8::is_ascii_digit) {
            return Some(unit_end);
        }
        j = number_end(b, unit_end);
    }
}

fn uuid(b: &[u8], i: usize) -> Option<usize> {
    let u = b.get(i..i + 36)?;
    let shape_ok = u.iter().enumerate().all(|(k, &c)| match k {
        8 | 13 | 18 | 23 => c == b'-',
        _ => is_hex(c),
    });
    (shape_ok && !b.get(i + 36).copied().is_some_and(is_word)).then_some(i + 36)
}

/// `2026-11-22`, `2026/11/22`, optionally followed by `T`, ` ` or `_` and a time of day.
fn date_time(b: &[u8], i: usize) -> Option<usize> {
    let d = b.get(i..i + 10)?;
    let sep = d[4];
    if d[7] != sep
        || ![0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&k| d[k].is_ascii_digit())
    {
        return None;
    }
    let month = two(d, 5);
    let day = two(d, 8);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut end = i + 10;
    if matches!(b.get(end), Some(b'T' | b' ' | b'_'))
        && b.get(end + 1).is_some_and(u8::is_ascii_digit)
    {
        if let Some(t) = time(b, end + 1, false) {
            end = t;
        }
    }
    ends_token(b, end).then_some(end)
}

/// `10:00:00`, `9:05:00.123`, `10:00:00,123Z`, `10:00+02:00` (after a date) at `i`.
/// A time alone must have seconds: `10:30` alone is as likely a ratio or a port.
fn time(b: &[u8], i: usize, alone: bool) -> Option<usize> {
    let h_end = digits_end(b, i);
    if h_end == i || h_end - i > 2 || b.get(h_end) != Some(&b':') {
        return None;
    }
    let hour = b[i..h_end]
        .iter()
        .fold(0, |a, &c| a * 10 + u32::from(c - b'0'));
    let (m, mut end) = two_digits_at(b, h_end + 1)?;
    if hour > 24 || m > 59 {
        return None;
    }
    match (b.get(end), two_digits_at(b, end + 1)) {
        (Some(b':'), Some((s, e))) if s <= 60 => end = e,
        _ if alone => return None,
        _ => {}
    }
    if matches!(b.get(end), Some(b'.' | b',')) && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits_end(b, end + 1);
    }
    if let Some(z) = zone(b, end) {
        if ends_token(b, z) {
            return Some(z);
        }
    }
    ends_token(b, end).then_some(end)
}

/// `Z`, `+02:00`, `-0500`, `+02` at `i`: where the zone ends, if there is one.
fn zone(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'Z' => Some(i + 1),
        b'+' | b'-' => {
            let (_, e) = two_digits_at(b, i + 1)?;
            match b.get(e) {
                Some(b':') => two_digits_at(b, e + 1).map(|(_, e)| e),
                Some(c) if c.is_ascii_digit() => two_digits_at(b, e).map(|(_, e)| e),
                _ => Some(e),
            }
        }
        _ => None,
    }
}

/// After `Nov` and a space: ` 2 10:00:00` or `22 10:00:00` (syslog): where the timestamp ends.
fn syslog_time(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j) == Some(&b' ') {
        j += 1;
    }
    let d_end = digits_end(b, j);
    if d_end == j || d_end - j > 2 || b.get(d_end) != Some(&b' ') {
        return None;
    }
    time(b, d_end + 1, true)
}

fn is_month(w: &[u8]) -> bool {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS.contains(&w)
}

/// `10.1.2.3`, `10.1.2.3:5432`, `10.0.0.0/8` at `i`.
fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    let end = ipv4_bare(b, i)?;
    let with_suffix = match b.get(end) {
        Some(b':') => port_end(b, end + 1),
        Some(b'/') => {
            let e = digits_end(b, end + 1);
            (e > end + 1 && e - end - 1 <= 2).then_some(e)
        }
        _ => None,
    };
    [with_suffix, Some(end)]
        .into_iter()
        .flatten()
        .find(|&e| ends_address(b, e))
}

fn ipv4_bare(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for part in 0..4 {
        if part > 0 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
        let e = digits_end(b, j);
        if e == j
            || e - j > 3
            || b[j..e]
                .iter()
                .fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
                > 255
        {
            return None;
        }
        j = e;
    }
    Some(j)
}

fn port_end(b: &[u8], i: usize) -> Option<usize> {
    let e = digits_end(b, i);
    (e > i && e - i <= 5).then_some(e)
}

/// An IPv6 address at `i`: eight groups, or fewer with one `::`, possibly ending in IPv4.
/// It must hold a decimal digit, so that `abc::def` (a path in some language) stays text.
fn ipv6(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut groups = 0;
    let mut double = false;
    if b[j..].starts_with(b"::") {
        double = true;
        j += 2;
    }
    loop {
        let s = j;
        while j < b.len() && j - s < 5 && is_hex(b[j]) {
            j += 1;
        }
        if j == s {
            break;
        }
        if j - s > 4 {
            return None;
        }
        if b.get(j) == Some(&b'.') {
            j = ipv4_bare(b, s)?;
            groups += 2;
            break;
        }
        groups += 1;
        if b[j..].starts_with(b"::") {
            if double {
                return None;
            }
            double = true;
            j += 2;
        } else if b.get(j) == Some(&b':') && b.get(j + 1).is_some_and(|&c| is_hex(c)) {
            j += 1;
        } else {
            break;
        }
    }
    let shape_ok = (double && (1..=7).contains(&groups)) || (!double && groups == 8);
    (shape_ok && b[i..j].iter().any(u8::is_ascii_digit) && ends_address(b, j)).then_some(j)
}

/// `[2001:db8::1]` or `[::1]:8080` at `i`.
fn bracketed_ipv6(b: &[u8], i: usize) -> Option<usize> {
    let start = i + 1;
    if !b.get(start).is_some_and(|&c| is_hex(c) || c == b':') {
        return None;
    }
    let mut end = bracketed_end(b, start)?;
    if b.get(end) != Some(&b']') {
        return None;
    }
    end += 1;
    if b.get(end) == Some(&b':') {
        if let Some(p) = port_end(b, end + 1) {
            end = p;
        }
    }
    (!b.get(end).copied().is_some_and(is_word)).then_some(end)
}

/// Where the address inside `[...]` ends (at the `]`), if the inside is one address:
/// parsed on its own, because `ipv6` does not accept `]` right after an address.
fn bracketed_end(b: &[u8], i: usize) -> Option<usize> {
    let close = i + memchr::memchr(b']', b.get(i..(i + 46).min(b.len()))?)?;
    let inner = &b[i..close];
    let groups_ok = inner.iter().all(|&c| is_hex(c) || c == b':' || c == b'.')
        && inner.contains(&b':')
        && inner.iter().any(u8::is_ascii_digit);
    (groups_ok && ipv6(inner, 0) == Some(inner.len())).then_some(close)
}

/// A quoted string at `i` (the opening quote), on one line, with `\` escapes: its end.
fn quoted(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'\n' => return None,
            c if c == q && !b.get(j + 1).copied().is_some_and(is_word) => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Where a query that starts at `i` ends: at whitespace or a quote, without trailing punctuation.
fn query_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len()
        && !b[j].is_ascii_whitespace()
        && !matches!(b[j], b'"' | b'\'' | b'<' | b'>' | b'`')
    {
        j += 1;
    }
    while j > i
        && matches!(
            b[j - 1],
            b'.' | b',' | b';' | b':' | b'!' | b')' | b']' | b'}'
        )
    {
        j -= 1;
    }
    j
}

/// After a timestamp: not inside a word, and not the start of something longer (`10:00:00:01`).
fn ends_token(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(&c) => !is_word(c) && c != b':',
    }
}

/// After an address: not inside a word, and not `1.2.3.4.5`.
fn ends_address(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(b'.') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(&c) => !is_word(c),
    }
}

/// ≥ 8 hex digits, at least one a decimal digit and one a letter.
fn is_hex_id(w: &[u8]) -> bool {
    w.len() >= 8
        && w.iter().all(|&c| is_hex(c))
        && w.iter().any(u8::is_ascii_digit)
        && w.iter().any(u8::is_ascii_alphabetic)
}

fn digits_end(b: &[u8], i: usize) -> usize {
    i + b
        .get(i..)
        .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
}

fn two(d: &[u8], k: usize) -> u32 {
    u32::from(d[k] - b'0') * 10 + u32::from(d[k + 1] - b'0')
}

/// Exactly two digits at `i` (not three): their value and end.
fn two_digits_at(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let d = b.get(i..i + 2)?;
    if !d.iter().all(u8::is_ascii_digit) || b.get(i + 2).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((two(d, 0), i + 2))
}

fn word_end(b: &[u8], i: usize) -> usize {
    i + b[i..].iter().take_while(|&&c| is_word(c)).count()
}

/// Letters, digits, `_`, and every byte of a non-ASCII character: cuts happen at ASCII only.
#[inline]
fn is_word(c: u8) -> bool {
    WORD[c as usize]
}

/// `is_word` as a table: word runs are most of what the scanner walks, one lookup per byte.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
        c += 1;
    }
    t
};

#[inline]
fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

/// The characters of an e-mail address's local part.
#[inline]
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(message: &str) -> String {
        template(message)
    }

    #[test]
    fn numbers_of_every_form_become_num() {
        assert_eq!(t("retry 3 of 5"), "retry <num> of <num>");
        assert_eq!(
            t("load 0.75 offset -12 delta=-0.5"),
            "load <num> offset <num> delta=<num>"
        );
        assert_eq!(t("flags 0x1f at 0XDEADBEEF"), "flags <num> at <num>");
        assert_eq!(t("rate 1.5e3 eps 2E-7"), "rate <num> eps <num>");
        assert_eq!(t("version 1.2.3 released"), "version <num> released");
        assert_eq!(
            t("50% done, worker-12 (2/3)"),
            "<num>% done, worker-<num> (<num>/<num>)"
        );
        assert_eq!(t("ci_run_id=123456"), "ci_run_id=<num>");
    }

    #[test]
    fn identifiers_with_digits_stay_words() {
        for word in [
            "utf8", "x86_64", "sha256", "v2", "log4j", "arm64", "md5", "e2e", "ipv6", "3rd",
        ] {
            assert_eq!(t(&format!("using {word} now")), format!("using {word} now"));
        }
        assert_eq!(t("range 10-20"), "range <num>-<num>");
    }

    #[test]
    fn hex_ids_of_eight_or_more_digits_become_hex() {
        assert_eq!(
            t("commit 3f2a9c1e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"),
            "commit <hex>"
        );
        assert_eq!(t("request 5f3a9c1e failed"), "request <hex> failed");
        assert_eq!(t("key=sha256:00ab12cd34ef5678"), "key=sha256:<hex>");
        // Too short, or no digit: a word.
        assert_eq!(t("id abc123 deadbeef facade"), "id abc123 deadbeef facade");
    }

    #[test]
    fn uuids_become_uuid() {
        assert_eq!(
            t("job 550e8400-e29b-41d4-a716-446655440000 done"),
            "job <uuid> done"
        );
        assert_eq!(t("id=F0CCE824-6937-4416-86B0-0D3E46F9FE2E."), "id=<uuid>.");
    }

    #[test]
    fn addresses_with_and_without_port_become_ip() {
        assert_eq!(
            t("connection to 10.1.2.3:5432 refused"),
            "connection to <ip> refused"
        );
        assert_eq!(t("from 192.168.0.1, net 10.0.0.0/8"), "from <ip>, net <ip>");
        assert_eq!(
            t("bind [::1]:8080 and fe80::1ff:fe23:4567:890a"),
            "bind <ip> and <ip>"
        );
        assert_eq!(t("peer 2001:db8::ff00:42:8329 gone"), "peer <ip> gone");
        assert_eq!(t("mapped ::ffff:10.0.0.1."), "mapped <ip>.");
        // Not addresses: a version with five parts, a Rust path, a time.
        assert_eq!(t("v 1.2.3.4.5"), "v <num>");
        assert_eq!(t("std::fmt and f64::EPSILON"), "std::fmt and f64::EPSILON");
    }

    #[test]
    fn url_queries_become_query_and_the_rest_stays() {
        assert_eq!(
            t("GET https://api.example.com/v1/users/4711/orders?page=2&sort=asc failed"),
            "GET https://api.example.com/v1/users/<num>/orders?<query> failed"
        );
        assert_eq!(
            t("fetch http://10.0.0.7:9000/x?a=1)."),
            "fetch http://<ip>/x?<query>)."
        );
        assert_eq!(t("\"GET /search?q=shoes HTTP/1.1\" 200"), "<str> <num>");
        assert_eq!(
            t("GET /search?q=shoes HTTP/1.1"),
            "GET /search?<query> HTTP/<num>"
        );
        assert_eq!(t("is it done? yes"), "is it done? yes");
    }

    #[test]
    fn variable_path_segments_are_masked() {
        assert_eq!(t("/builds/4711/log"), "/builds/<num>/log");
        assert_eq!(
            t("open /var/cache/3f2a9c1e8d7b/550e8400-e29b-41d4-a716-446655440000/x86_64/data.bin"),
            "open /var/cache/<hex>/<uuid>/x86_64/data.bin"
        );
        assert_eq!(t("wrote build-4711.tar.zst"), "wrote build-<num>.tar.zst");
    }

    #[test]
    fn email_addresses_become_email() {
        assert_eq!(
            t("mail to john.doe+ci@example.co.uk failed"),
            "mail to <email> failed"
        );
        assert_eq!(t("<ops-team@corp.example.com>"), "<<email>>");
        assert_eq!(t("user@localhost and a@b"), "user@localhost and a@b");
    }

    #[test]
    fn quoted_strings_become_str() {
        assert_eq!(
            t("unknown key 'db.host' in \"app.toml\""),
            "unknown key <str> in <str>"
        );
        assert_eq!(t(r#"said "a \"quoted\" word" ok"#), "said <str> ok");
        assert_eq!(t("can't open 'x'"), "can't open <str>");
        assert_eq!(t("it's the user's file"), "it's the user's file");
        assert_eq!(t("unbalanced \"quote"), "unbalanced \"quote");
        assert_eq!(
            t(r#"body {"user": "alice", "id": 42} and {'state': 'open'}"#),
            r#"body {"user": <str>, "id": <num>} and {'state': <str>}"#
        );
    }

    #[test]
    fn durations_become_duration() {
        for d in [
            "150ms", "1.5s", "2m30s", "1h2m3.5s", "30s", "250µs", "10ns", "5min", "3d",
        ] {
            assert_eq!(t(&format!("took {d}")), "took <duration>", "{d}");
        }
        assert_eq!(t("dur=1234ms wait=-5s"), "dur=<duration> wait=<duration>");
    }

    #[test]
    fn sizes_become_size() {
        for s in ["10MiB", "512KB", "1.5GB", "64k", "2Gi", "100B"] {
            assert_eq!(t(&format!("wrote {s}")), "wrote <size>", "{s}");
        }
    }

    #[test]
    fn timestamps_become_ts() {
        for ts in [
            "2026-11-22T10:00:00.123Z",
            "2026-11-22T10:00:00.123456789+02:00",
            "2026-11-22 10:00:00,123",
            "2026/11/22 10:00:00",
            "2026-11-22",
            "10:00:00.123",
            "10:00:00",
            "Nov 22 10:00:00",
            "Nov  2 10:00:00",
        ] {
            assert_eq!(t(&format!("at {ts} done")), "at <ts> done", "{ts}");
        }
        // Not timestamps.
        assert_eq!(t("ratio 10:30"), "ratio <num>:<num>");
        assert_eq!(t("2026-13-22"), "<num>-<num>-<num>");
    }

    #[test]
    fn a_workload_line_masks_to_its_template() {
        assert_eq!(
            t("GET /api/v1/pipelines/81723/jobs status=503 bytes=4182 dur=311ms"),
            "GET /api/v1/pipelines/<num>/jobs status=<num> bytes=<num> dur=<duration>"
        );
        assert_eq!(
            t("heartbeat ok latency=12ms mem=2048MiB goroutines=312"),
            "heartbeat ok latency=<duration> mem=<size> goroutines=<num>"
        );
        assert_eq!(
            t("user u48213 triggered pipeline on ref refs/heads/feature/9c1e8d7b"),
            "user u48213 triggered pipeline on ref refs/heads/feature/<hex>"
        );
    }

    #[test]
    fn non_ascii_text_is_copied_and_cut_only_at_ascii() {
        assert_eq!(t("Größe 12 überschritten"), "Größe <num> überschritten");
        assert_eq!(t("日志 42 条"), "日志 <num> 条");
        assert_eq!(t("é5 5é"), "é5 5é");
    }

    #[test]
    fn any_input_masks_without_panicking() {
        // A deterministic walk over awkward byte neighbourhoods: every cut must be a char boundary.
        let parts = [
            "1", "-", ".", ":", "::", "'", "\"", "@", "a", "f", "ä", "µs", "/", "?", "[", "]", " ",
            "x", "0x", "2026-", "10:", "e", "\\", "\n", "日", "T", "Z", "+", ",", "=", "://", "ms",
            "GiB", "Nov ", "ff:", "b.c",
        ];
        let mut state = 0x2545_f491_u32;
        for _ in 0..50_000 {
            let mut s = String::new();
            for _ in 0..14 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                s.push_str(parts[state as usize % parts.len()]);
            }
            let _ = t(&s);
        }
    }

    #[test]
    fn masking_appends_to_the_buffer() {
        let mut out = String::from("> ");
        mask("took 5ms", &mut out);
        assert_eq!(out, "> took <duration>");
    }
}
