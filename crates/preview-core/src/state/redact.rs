//! Passwords out of URLs: every description, error and `Debug` output of a
//! backend URL goes through [`redact_url`].

/// Removes passwords from a URL: the password in `user:password@` and any
/// `password=` query parameter become `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // libpq key/value form: `host=h password=x`.
        return url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    // The userinfo ends at the last '@' (a password may contain '@', '/' or '?');
    // when in doubt, more is hidden rather than less.
    match rest.rsplit_once('@') {
        Some((userinfo, after)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{}", redact_query(after)),
            None => format!("{scheme}://{userinfo}@{}", redact_query(after)),
        },
        None => format!("{scheme}://{}", redact_query(rest)),
    }
}

/// `password=` query parameters become `password=***`.
fn redact_query(s: &str) -> String {
    let Some((head, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{head}?{}", redacted.join("&"))
}
