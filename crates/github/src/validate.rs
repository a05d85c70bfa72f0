//! Input validation for values that end up in comments, API paths or bodies. Used as
//! clap value parsers, so bad input fails before anything is sent (exit code 2).

/// A commit SHA: 7 to 40 lowercase hex digits (upper case is folded).
pub fn commit_sha(text: &str) -> Result<String, String> {
    let sha = text.trim().to_ascii_lowercase();
    if (7..=40).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(format!("{text:?} is not a commit SHA (7–40 hex digits)"))
    }
}

/// A full 40-digit commit SHA (what deployments and the gate pin to).
pub fn full_commit_sha(text: &str) -> Result<String, String> {
    let sha = commit_sha(text)?;
    if sha.len() == 40 {
        Ok(sha)
    } else {
        Err(format!("{text:?} is not a full 40-digit commit SHA"))
    }
}

/// A saved plan's id, as `stacks preview --out` prints it: `sha256:<64 lowercase hex>`.
pub fn plan_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    let hex_ok = id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if hex_ok {
        Ok(id.to_string())
    } else {
        Err(format!(
            "{text:?} is not a plan id (sha256:<64 lowercase hex>, as `stacks preview --out` prints it)"
        ))
    }
}

/// An image pinned by digest: `^[^@]+@sha256:[0-9a-f]{64}$`, and a name without
/// whitespace or Markdown-significant characters.
pub fn pinned_image(text: &str) -> Result<String, String> {
    let error = || {
        format!(
            "{text:?} is not an image pinned by digest (NAME@sha256:<64 lowercase hex>); tags are not accepted"
        )
    };
    let (name, digest) = text.split_once('@').ok_or_else(error)?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(error)?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | ':' | '-' | '_'));
    let hex_ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if name_ok && hex_ok {
        Ok(text.to_string())
    } else {
        Err(error())
    }
}

/// An absolute http(s) URL without characters that could break Markdown.
pub fn http_url(text: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) URL"));
    }
    let rendered = text.trim().to_string();
    if rendered
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '`' | '|' | '(' | ')' | '"'))
    {
        return Err(format!(
            "{text:?} contains characters not allowed in a link"
        ));
    }
    Ok(rendered)
}

/// A deployment environment name (GitHub allows up to 255 characters).
pub fn environment_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{text:?} is not an environment name (letters, digits, '-', '_', '.', '/'; at most 255)"
        ))
    }
}

/// A positive PR number.
pub fn pr_number(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a pull request number (a positive integer)"
        )),
    }
}

/// A GitHub login: 1–39 letters, digits or single hyphens (not at either end), or an
/// app's bot login `NAME[bot]`. What `github.triggering_actor` and the API return.
pub fn login(text: &str) -> Result<String, String> {
    let name = text.trim();
    let user = name.strip_suffix("[bot]").unwrap_or(name);
    let ok = !user.is_empty()
        && user.len() <= 39
        && !user.starts_with('-')
        && !user.ends_with('-')
        && !user.contains("--")
        && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{text:?} is not a GitHub login (letters, digits and single hyphens, at most 39, or NAME[bot])"
        ))
    }
}

/// A duration such as `120s`, `5m`, `250ms`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 120s, 5m or 250ms: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let good = format!("ghcr.io/aphiria/web@sha256:{}", "a".repeat(64));
        assert_eq!(pinned_image(&good), Ok(good.clone()));
        for bad in [
            "ghcr.io/aphiria/web:latest".to_string(),
            format!("ghcr.io/aphiria/web@sha256:{}", "A".repeat(64)),
            format!("ghcr.io/aphiria/web@sha256:{}", "a".repeat(63)),
            format!("@sha256:{}", "a".repeat(64)),
            format!("web`x@sha256:{}", "a".repeat(64)),
            format!("ghcr.io/web@sha512:{}", "a".repeat(64)),
        ] {
            assert!(pinned_image(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shas_urls_numbers() {
        assert!(commit_sha("ABCDEF1").is_ok());
        assert!(commit_sha("abc").is_err());
        assert!(full_commit_sha(&"a".repeat(40)).is_ok());
        assert!(full_commit_sha("abcdef1").is_err());
        assert_eq!(
            http_url("https://1.pr.example.com"),
            Ok("https://1.pr.example.com".into())
        );
        assert!(http_url("javascript:alert(1)").is_err());
        assert!(http_url("https://x/a)b").is_err());
        assert_eq!(pr_number("12"), Ok(12));
        assert!(pr_number("0").is_err());
        assert!(pr_number("-1").is_err());
        assert!(environment_name("preview-pr-12").is_ok());
        assert!(environment_name("a b").is_err());
        assert_eq!(duration("120s"), Ok(std::time::Duration::from_secs(120)));
        assert_eq!(login("alice"), Ok("alice".into()));
        assert_eq!(
            login("github-actions[bot]"),
            Ok("github-actions[bot]".into())
        );
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a b",
            "a/b",
            "[bot]",
            &"a".repeat(40),
        ] {
            assert!(login(bad).is_err(), "{bad}");
        }
    }
}
