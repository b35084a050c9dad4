//! Level normalization: every spelling of a severity that logs use, mapped to
//! the seven levels of SPEC §3. Case-insensitive; an unknown word is `None`
//! (the caller keeps it in `fields.level_raw`), never a guess.

use serde_json::Value;

use crate::event::Level;

/// Normalizes a level word, a one-letter form (glog/klog `I W E F`, Android
/// `V D I W E F A`), a syslog severity (`0`–`7`) or a pino/bunyan number (`10`–`60`).
pub fn parse(text: &str) -> Option<Level> {
    let t = text
        .trim()
        .trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | ':' | '<' | '>' | '"' | '\''));
    if let Ok(n) = t.parse::<i64>() {
        return from_number(n);
    }
    if t.len() > 16 {
        return None;
    }
    let mut lower = [0u8; 16];
    let lower = &mut lower[..t.len()];
    lower.copy_from_slice(t.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"t" | b"trace" | b"trc" | b"finest" | b"finer" | b"verbose2" => Level::Trace,
        b"d" | b"v" | b"debug" | b"dbg" | b"debg" | b"fine" | b"verbose" | b"config" => {
            Level::Debug
        }
        b"i" | b"info" | b"inf" | b"information" | b"informational" | b"log" => Level::Info,
        b"n" | b"notice" | b"note" => Level::Notice,
        b"w" | b"warn" | b"warning" | b"wrn" | b"wrng" => Level::Warn,
        b"e" | b"error" | b"err" | b"eror" | b"erro" | b"severe" | b"failure" | b"fail" => {
            Level::Error
        }
        b"f" | b"a" | b"c" | b"fatal" | b"ftl" | b"pnc" | b"crit" | b"critical" | b"crt"
        | b"panic" | b"dpanic" | b"emerg" | b"emergency" | b"alert" => Level::Critical,
        _ => return None,
    })
}

/// Syslog severities 0–7 and pino/bunyan levels 10–60.
pub fn from_number(n: i64) -> Option<Level> {
    Some(match n {
        0..=2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warn,
        5 => Level::Notice,
        6 => Level::Info,
        7 => Level::Debug,
        10 => Level::Trace,
        20 => Level::Debug,
        30 => Level::Info,
        40 => Level::Warn,
        50 => Level::Error,
        60 => Level::Critical,
        _ => return None,
    })
}

/// A level from a JSON value: a string in any form above, or a number.
pub fn from_json(v: &Value) -> Option<Level> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(n) => n.as_i64().and_then(from_number),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_normalized() {
        let table: &[(&str, Option<Level>)] = &[
            ("TRACE", Some(Level::Trace)),
            ("debug", Some(Level::Debug)),
            ("Info", Some(Level::Info)),
            ("INFORMATION", Some(Level::Info)),
            ("notice", Some(Level::Notice)),
            ("WARNING", Some(Level::Warn)),
            ("warn", Some(Level::Warn)),
            ("ERR", Some(Level::Error)),
            ("SEVERE", Some(Level::Error)),
            ("fatal", Some(Level::Critical)),
            ("panic", Some(Level::Critical)),
            ("PNC", Some(Level::Critical)),
            ("fail", Some(Level::Error)),
            ("DPANIC", Some(Level::Critical)),
            ("emerg", Some(Level::Critical)),
            ("alert", Some(Level::Critical)),
            ("crit", Some(Level::Critical)),
            ("I", Some(Level::Info)),
            ("W", Some(Level::Warn)),
            ("E", Some(Level::Error)),
            ("F", Some(Level::Critical)),
            ("30", Some(Level::Info)),
            ("50", Some(Level::Error)),
            ("60", Some(Level::Critical)),
            ("3", Some(Level::Error)),
            ("7", Some(Level::Debug)),
            ("[ERROR]", Some(Level::Error)),
            ("ERROR:", Some(Level::Error)),
            ("loud", None),
            ("45", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), *want, "{text:?}");
        }
        assert_eq!(from_json(&serde_json::json!(40)), Some(Level::Warn));
    }
}
