//! Secret values out of a digest (pure): log lines and messages are written by
//! applications and controllers, and may quote what they were given.
//!
//! A [`Redactor`] replaces, in every text of a [`FailureDigest`], each known
//! secret value (the stack's own Secret values, the Secrets its pods read, any
//! other value the caller adds) with [`REDACTED`], longest first; values
//! shorter than [`MIN_SECRET_CHARS`] are not searched for (they would blank
//! out ordinary words). Then patterns catch what no list knows: `password=…`,
//! `token: …` (and `secret`, `passwd`, `pwd`, `api_key`, `access_key`), the
//! password of `scheme://user:password@host` and `Bearer …`.

use std::sync::LazyLock;

use regex::Regex;

use super::FailureDigest;

/// What a redacted value reads as.
pub const REDACTED: &str = "[secret]";
/// Known values shorter than this are not searched for.
pub const MIN_SECRET_CHARS: usize = 4;

static KEY_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)["']?\s*[=:]\s*["']?)([^\s"'&,;]+)"#,
    )
    .ok()
});
static URL_PASSWORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)@").ok());
static BEARER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer\s+)[a-z0-9._~+/=-]+").ok());

/// Redacts known secret values and secret-looking patterns.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Known values, longest first.
    values: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (and the patterns).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut r = Redactor::default();
        r.extend(values);
        r
    }

    /// Adds more known values.
    pub fn extend(&mut self, values: impl IntoIterator<Item = String>) {
        for value in values {
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            if value.chars().count() >= MIN_SECRET_CHARS && !self.values.contains(&value) {
                self.values.push(value);
            }
        }
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// How many values it knows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when it knows no value (the patterns still apply).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with known values and secret-looking patterns replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
            // A multi-line value (a key, a certificate) may be quoted line by line.
            if value.contains('\n') {
                for line in value.lines().filter(|l| l.trim().chars().count() >= 16) {
                    out = out.replace(line.trim(), REDACTED);
                }
            }
        }
        if let Some(re) = KEY_VALUE.as_ref() {
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    if &c[2] == REDACTED {
                        c[0].to_owned()
                    } else {
                        format!("{}{REDACTED}", &c[1])
                    }
                })
                .into_owned();
        }
        if let Some(re) = URL_PASSWORD.as_ref() {
            out = re
                .replace_all(&out, format!("${{1}}{REDACTED}@"))
                .into_owned();
        }
        if let Some(re) = BEARER.as_ref() {
            out = re
                .replace_all(&out, format!("${{1}}{REDACTED}"))
                .into_owned();
        }
        out
    }

    /// Every text of `digest` redacted.
    pub fn digest(&self, digest: &mut FailureDigest) {
        let r = |s: &mut String| *s = self.text(s);
        r(&mut digest.reason);
        digest.notes.iter_mut().for_each(r);
        for e in &mut digest.events {
            r(&mut e.message);
            r(&mut e.object);
        }
        for c in &mut digest.containers {
            r(&mut c.state);
            c.log.iter_mut().for_each(r);
            if let Some(e) = &mut c.log_error {
                r(e);
            }
            if let Some(t) = &mut c.last_termination
                && let Some(m) = &mut t.message
            {
                r(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_longest_first_and_short_ones_ignored() {
        let r = Redactor::new(["hunter2-long".into(), "hunter2".into(), "abc".into()]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.text("pass hunter2-long then hunter2, abc stays"),
            "pass [secret] then [secret], abc stays"
        );
    }

    #[test]
    fn patterns_without_known_values() {
        let r = Redactor::default();
        assert_eq!(
            r.text("connecting with password=s3cr3t&user=app"),
            "connecting with password=[secret]&user=app"
        );
        assert_eq!(
            r.text(r#"{"token": "abc.def"}"#),
            r#"{"token": "[secret]"}"#
        );
        assert_eq!(r.text("API_KEY: xyz123"), "API_KEY: [secret]");
        assert_eq!(
            r.text("dial postgres://app:pa55@db.default.svc:5432/app failed"),
            "dial postgres://app:[secret]@db.default.svc:5432/app failed"
        );
        assert_eq!(
            r.text("Authorization: Bearer eyJhbGciOi.x.y"),
            "Authorization: Bearer [secret]"
        );
        assert_eq!(r.text("no secrets here"), "no secrets here");
    }

    #[test]
    fn a_known_value_inside_a_pattern_is_redacted_once() {
        let r = Redactor::new(["s3cr3t-value".into()]);
        assert_eq!(r.text("password=s3cr3t-value"), "password=[secret]");
    }

    #[test]
    fn multi_line_values_are_found_line_by_line() {
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----";
        let r = Redactor::new([key.into()]);
        assert_eq!(
            r.text("bad key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC here"),
            "bad key line [secret] here"
        );
    }
}
