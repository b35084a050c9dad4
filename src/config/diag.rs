//! Diagnostics that point into a config or pattern file: `file:line:col: problem — fix`.
//!
//! Owns turning byte spans into line/column, `${VAR}` expansion and `*_file`
//! secrets, because each of those must report where in the file the user looks.
//! It must never print a secret's value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 is the file as a whole (it cannot be read, say).
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.problem)?,
            line => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                line,
                self.col,
                self.problem
            )?,
        }
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A file being loaded: its path and text, so spans become `line:col`.
pub struct FileCtx<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl FileCtx<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    pub fn diag(
        &self,
        span: Range<usize>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic {
            file: self.path.to_path_buf(),
            line,
            col,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Turns a TOML parse or shape error into a diagnostic; an unknown key gets
    /// the nearest valid key as its fix.
    /// `doc` names the page that describes the file's shape.
    pub fn toml_error(&self, err: &toml::de::Error, doc: &str) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_string();
        if let Some((unknown, expected)) = parse_unknown_field(&message) {
            let fix = match nearest(&unknown, &expected) {
                Some(best) => format!(
                    "did you mean `{best}`? valid keys here: {}",
                    expected.join(", ")
                ),
                None => format!("valid keys here: {}", expected.join(", ")),
            };
            return self.diag(span, format!("unknown key `{unknown}`"), fix);
        }
        self.diag(span, message, format!("see {doc} for the expected shape"))
    }

    /// Deserializes each table of an array of tables (`[[source]]`, `[[pattern]]`)
    /// on its own, so that a shape error in one does not hide the others'.
    /// `name` is the key, `doc` the page that describes the tables.
    pub fn each_table<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        value: toml::Spanned<toml::de::DeValue<'_>>,
        doc: &str,
        errors: &mut Vec<Diagnostic>,
    ) -> Vec<toml::Spanned<T>> {
        use serde::de::IntoDeserializer;
        let span = value.span();
        let toml::de::DeValue::Array(items) = value.into_inner() else {
            errors.push(self.diag(
                span,
                format!("`{name}` is not a list of tables"),
                format!("write each one as a [[{name}]] table"),
            ));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let span = item.span();
            match T::deserialize(item.into_deserializer()) {
                Ok(t) => out.push(toml::Spanned::new(span, t)),
                Err(e) => errors.push(self.toml_error(&e, doc)),
            }
        }
        out
    }

    /// Expands `${VAR}` from the environment; `$${` is a literal `${`.
    /// A variable that is not set is an error naming it, never an empty string.
    pub fn expand(&self, value: &toml::Spanned<String>) -> Result<String, Diagnostic> {
        let text = value.get_ref();
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let Some(end) = after.find('}') else {
                    return Err(self.diag(
                        value.span(),
                        "unterminated `${` in value",
                        "close it: \"${NAME}\", or write \"$${\" for a literal",
                    ));
                };
                let name = &after[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.diag(
                        value.span(),
                        format!("`${{{name}}}` is not a variable name"),
                        "use letters, digits and `_`, e.g. \"${FEISHU_WEBHOOK}\"",
                    ));
                }
                match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => {
                        return Err(self.diag(
                            value.span(),
                            format!("environment variable `{name}` is not set"),
                            format!("export {name}=... before starting logward, or write the value literally"),
                        ));
                    }
                }
                rest = &after[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves a secret given either inline (`key = "..."`, with `${VAR}`) or as
    /// `key_file = "/path"`. The file's content is trimmed of its final newline.
    /// An empty secret is an error: it would let anyone in or no one.
    pub fn secret(
        &self,
        key: &str,
        inline: Option<&toml::Spanned<String>>,
        file: Option<&toml::Spanned<String>>,
    ) -> Result<Option<Secret>, Diagnostic> {
        match (inline, file) {
            (Some(_), Some(f)) => Err(self.diag(
                f.span(),
                format!("both `{key}` and `{key}_file` are set"),
                "keep one of them".to_string(),
            )),
            (Some(v), None) => match self.expand(v)? {
                s if s.is_empty() => Err(self.diag(
                    v.span(),
                    format!("`{key}` is empty"),
                    format!("set it, or remove `{key}`"),
                )),
                s => Ok(Some(Secret(s))),
            },
            (None, Some(f)) => {
                let path = self.expand(f)?;
                match std::fs::read_to_string(&path) {
                    Ok(s) if s.trim_end_matches(['\n', '\r']).is_empty() => Err(self.diag(
                        f.span(),
                        format!("`{key}_file` {path} is empty"),
                        format!("write the {key} into it, or remove `{key}_file`"),
                    )),
                    Ok(s) => Ok(Some(Secret(s.trim_end_matches(['\n', '\r']).to_string()))),
                    Err(e) => Err(self.diag(
                        f.span(),
                        format!("cannot read `{key}_file` {path}: {e}"),
                        "check the path and that logward may read it",
                    )),
                }
            }
            (None, None) => Ok(None),
        }
    }
}

/// A secret value (token, password, webhook URL). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret made in a unit test, not read from a file.
    #[cfg(test)]
    pub fn for_test(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// serde says: "unknown field `pathz`, expected one of `name`, `type`" (or "expected `name`").
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect::<Vec<_>>();
    Some((unknown.to_string(), expected))
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| {
            *d <= 2.max(c.len() / 3) || word.starts_with(c.as_str()) || c.starts_with(word)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(text: &str) -> FileCtx<'_> {
        FileCtx {
            path: Path::new("a.toml"),
            text,
        }
    }

    #[test]
    fn spans_become_one_based_line_and_column() {
        let c = ctx("a = 1\nbb = 2\n");
        assert_eq!(c.line_col(0), (1, 1));
        assert_eq!(c.line_col(6), (2, 1));
        assert_eq!(c.line_col(9), (2, 4));
    }

    #[test]
    fn unknown_field_suggests_nearest_key() {
        let (u, e) =
            parse_unknown_field("unknown field `pathz`, expected one of `name`, `paths`, `type`")
                .unwrap();
        assert_eq!(u, "pathz");
        assert_eq!(nearest(&u, &e), Some("paths"));
        assert_eq!(nearest("zzzzzz", &e), None);
    }

    #[test]
    fn expansion_reads_environment_and_names_missing_variables() {
        // SAFETY: this test is the only one touching these names.
        unsafe { std::env::set_var("LOGWARD_TEST_EXPAND", "v") };
        let text = r#"k = "x${LOGWARD_TEST_EXPAND}y$${z}$w""#;
        let c = ctx(text);
        let value: toml::Spanned<String> =
            toml::Spanned::new(4..text.len(), "x${LOGWARD_TEST_EXPAND}y$${z}$w".into());
        assert_eq!(c.expand(&value).unwrap(), "xvy${z}$w");
        let missing = toml::Spanned::new(4..10, "${LOGWARD_TEST_SURELY_UNSET}".to_string());
        let err = c.expand(&missing).unwrap_err();
        assert!(err.problem.contains("LOGWARD_TEST_SURELY_UNSET"), "{err}");
    }

    #[test]
    fn a_problem_with_the_whole_file_has_no_line() {
        let d = Diagnostic {
            file: PathBuf::from("a.toml"),
            line: 0,
            col: 0,
            problem: "cannot read config".into(),
            fix: "pass an existing file".into(),
        };
        assert_eq!(
            d.to_string(),
            "a.toml: cannot read config — pass an existing file"
        );
    }

    #[test]
    fn an_empty_secret_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "\n").unwrap();
        let c = ctx("token = \"\"\n");
        let path = toml::Spanned::new(0..5, file.display().to_string());
        let err = c.secret("token", None, Some(&path)).unwrap_err();
        assert!(err.problem.ends_with("is empty"), "{err}");
        let inline = toml::Spanned::new(8..10, String::new());
        let err = c.secret("token", Some(&inline), None).unwrap_err();
        assert_eq!(err.problem, "`token` is empty");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "***");
    }
}
