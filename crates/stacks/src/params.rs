//! Per-run parameters, checked before anything else happens.
//!
//! Each parser returns an error that names the flag and says what is expected.

use std::fmt;

/// A pull-request number: a positive decimal integer without sign or leading zeros.
///
/// Kept as digits (not a machine integer) so a huge number is reported by the
/// name checks as "name too long" rather than as an overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrNumber(String);

impl PrNumber {
    /// Parses `--pr`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("--pr: missing pull-request number".into());
        }
        if s.starts_with('-') {
            return Err(format!(
                "--pr {raw}: a pull-request number is positive (1, 2, …)"
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "--pr {raw}: not a number; pass the pull-request number, e.g. --pr 123"
            ));
        }
        if s.bytes().all(|b| b == b'0') {
            return Err(format!("--pr {raw}: pull-request numbers start at 1"));
        }
        if s.starts_with('0') {
            return Err(format!(
                "--pr {raw}: write the number without leading zeros"
            ));
        }
        Ok(PrNumber(s.to_owned()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference pinned by digest: `name@sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedImage {
    reference: String,
}

impl PinnedImage {
    /// Parses an image reference given to `flag`, requiring a full digest.
    pub fn parse(flag: &str, raw: &str) -> Result<Self, String> {
        let Some((name, digest)) = raw.split_once('@') else {
            return Err(format!(
                "{flag} {raw}: not pinned by digest; pass NAME@sha256:<64 hex> (the digest your build printed), not a tag"
            ));
        };
        if name.is_empty() {
            return Err(format!("{flag} {raw}: missing image name before '@'"));
        }
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(format!("{flag} {raw}: digest must start with sha256:"));
        };
        if hex.len() != 64 {
            return Err(format!(
                "{flag} {raw}: digest has {} hex characters, expected 64",
                hex.len()
            ));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{flag} {raw}: digest is not hexadecimal"));
        }
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{flag} {raw}: digest must be lowercase hex"));
        }
        Ok(PinnedImage {
            reference: raw.to_owned(),
        })
    }

    /// The full reference.
    pub fn as_str(&self) -> &str {
        &self.reference
    }

    /// The `sha256:…` digest.
    pub fn digest(&self) -> &str {
        self.reference.split_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

/// `--image KEY=REF`, repeated: the images by app image key. A flag without
/// `=`, with an empty side, or a key given twice is an error naming the flag.
/// (Whether the key is the app's and the reference is pinned and allowed is
/// checked when the stack is built.)
pub fn image_flags(flags: &[String]) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut images = std::collections::BTreeMap::new();
    for flag in flags {
        let Some((key, image)) = flag
            .split_once('=')
            .filter(|(k, i)| !k.trim().is_empty() && !i.trim().is_empty())
        else {
            return Err(format!(
                "--image {flag}: expected KEY=REF, e.g. --image worker=ghcr.io/org/worker@sha256:<64 hex>"
            ));
        };
        if images
            .insert(key.trim().to_owned(), image.trim().to_owned())
            .is_some()
        {
            return Err(format!(
                "--image {key}=…: given twice; pass one image per key"
            ));
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_flags_are_key_equals_ref() {
        let flags = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let images =
            image_flags(&flags(&["api=ghcr.io/a/api@sha256:1", "worker=w"])).expect("parses");
        assert_eq!(images["api"], "ghcr.io/a/api@sha256:1");
        assert_eq!(images["worker"], "w");
        assert_eq!(
            image_flags(&flags(&["api"])).expect_err("no ="),
            "--image api: expected KEY=REF, e.g. --image worker=ghcr.io/org/worker@sha256:<64 hex>"
        );
        assert!(image_flags(&flags(&["=x"])).is_err());
        assert!(image_flags(&flags(&["api="])).is_err());
        assert_eq!(
            image_flags(&flags(&["api=a", "api=b"])).expect_err("twice"),
            "--image api=…: given twice; pass one image per key"
        );
    }

    #[test]
    fn pr_numbers() {
        assert_eq!(PrNumber::parse("123").expect("ok").as_str(), "123");
        for (bad, says) in [
            ("0", "start at 1"),
            ("-1", "positive"),
            ("abc", "not a number"),
            ("", "missing"),
            ("007", "leading zeros"),
            ("1.5", "not a number"),
        ] {
            let err = PrNumber::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn pinned_images() {
        let d = "a".repeat(64);
        let ok = PinnedImage::parse("--web-image", &format!("reg/web@sha256:{d}")).expect("ok");
        assert_eq!(ok.digest(), format!("sha256:{d}"));
        for (bad, says) in [
            ("reg/web:1.2".to_owned(), "not pinned by digest"),
            ("reg/web@sha256:abc".to_owned(), "has 3 hex characters"),
            (format!("reg/web@sha256:{}", "A".repeat(64)), "lowercase"),
            (format!("reg/web@md5:{d}"), "sha256:"),
            (format!("@sha256:{d}"), "missing image name"),
            (
                format!("reg/web@sha256:{}", "g".repeat(64)),
                "not hexadecimal",
            ),
        ] {
            let err = PinnedImage::parse("--web-image", &bad).expect_err(&bad);
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.starts_with("--web-image"), "{err}");
        }
    }
}
