//! Injected failures: a fake answers the next matching requests with a canned
//! failure instead of handling them, a given number of times.

use std::collections::VecDeque;

/// Takes one use of the first fault in `faults` that `matches`: a fault on its
/// last use (`times` ≤ 1) is removed, another one counts its `times` down.
pub fn take_first<F: Clone>(
    faults: &mut VecDeque<F>,
    matches: impl Fn(&F) -> bool,
    times: impl Fn(&mut F) -> &mut u32,
) -> Option<F> {
    let index = faults.iter().position(matches)?;
    let fault = faults[index].clone();
    let left = times(&mut faults[index]);
    if *left <= 1 {
        faults.remove(index);
    } else {
        *left -= 1;
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_use_counts_down_and_the_last_removes() {
        let mut faults = VecDeque::from([("a", 2_u32), ("b", 1)]);
        let take = |faults: &mut VecDeque<(&'static str, u32)>, name: &str| {
            take_first(faults, |f| f.0 == name, |f| &mut f.1).map(|f| f.0)
        };
        assert_eq!(take(&mut faults, "a"), Some("a"));
        assert_eq!(faults, [("a", 1), ("b", 1)]);
        assert_eq!(take(&mut faults, "a"), Some("a"));
        assert_eq!(take(&mut faults, "a"), None);
        assert_eq!(take(&mut faults, "b"), Some("b"));
        assert!(faults.is_empty());
    }
}
