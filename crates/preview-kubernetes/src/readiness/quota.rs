//! `exceeded quota` rejections, as the ResourceQuota admission words them:
//! `pods "web-…" is forbidden: exceeded quota: preview-quota, requested:
//! limits.cpu=4, used: limits.cpu=0, limited: limits.cpu=2`.
//!
//! A pod whose own request is over a limit can never be admitted, whatever
//! else is deleted: [`never_fits`] says so, and the step fails at once. When
//! only the usage leaves no room, pods going away may make room, and the
//! failure waits out the grace period instead.

/// True when `message` is a quota rejection in which some resource's
/// `requested` amount alone is over its `limited` amount.
pub(super) fn never_fits(message: &str) -> bool {
    let Some(at) = message.find("exceeded quota:") else {
        return false;
    };
    let text = &message[at..];
    let (Some(requested), Some(limited)) = (
        section(text, "requested: ", ", used: "),
        section(text, "limited: ", ""),
    ) else {
        return false;
    };
    let limits = pairs(limited);
    pairs(requested).into_iter().any(|(name, amount)| {
        limits.iter().find(|(n, _)| *n == name).is_some_and(
            |(_, limit)| matches!((quantity(amount), quantity(limit)), (Some(a), Some(l)) if a > l),
        )
    })
}

/// The text after `start` up to `end` (or the end of the quota's list).
fn section<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    let to = if end.is_empty() {
        rest.find(|c: char| c.is_whitespace() || c == '"' || c == ';')
            .unwrap_or(rest.len())
    } else {
        rest.find(end)?
    };
    Some(&rest[..to])
}

/// `a=1,b=2Gi` as pairs.
fn pairs(list: &str) -> Vec<(&str, &str)> {
    list.split(',')
        .filter_map(|p| p.trim().split_once('='))
        .collect()
}

/// A Kubernetes quantity as a number (`500m` → 0.5, `2Gi` → 2³¹): decimal
/// and binary suffixes and exponents; `None` when it is not one.
pub(super) fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("1Gi"), Some(1_073_741_824.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("x"), None);
    }

    #[test]
    fn a_request_over_the_limit_never_fits() {
        assert!(never_fits(
            "Error creating: pods \"web-1\" is forbidden: exceeded quota: preview-quota, requested: \
             limits.cpu=4,limits.memory=1Gi, used: limits.cpu=0,limits.memory=0, limited: limits.cpu=2,limits.memory=2Gi"
        ));
        assert!(never_fits(
            "exceeded quota: q, requested: requests.memory=3Gi, used: requests.memory=0, limited: requests.memory=2048Mi"
        ));
    }

    #[test]
    fn usage_that_may_go_away_fits_later() {
        assert!(!never_fits(
            "pods \"migrate-b4n8d\" is forbidden: exceeded quota: preview-quota, requested: pods=1, used: pods=5, limited: pods=5"
        ));
        assert!(!never_fits(
            "failed quota: preview-quota: must specify limits.cpu"
        ));
        assert!(!never_fits("something else"));
    }
}
