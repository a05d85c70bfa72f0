//! Unit tests of the shared integrity rules.

use super::*;

fn state(lineage: &str, serial: u64) -> StackState {
    let mut s = StackState::new("s");
    s.lineage = lineage.into();
    s.serial = serial;
    s
}

#[test]
fn next_rule() {
    assert!(check_write(None, &state("a", 1), &WriteRule::Next).is_ok());
    let err = check_write(None, &state("a", 2), &WriteRule::Next).expect_err("gap");
    assert!(err.to_string().contains("expected 1"), "{err}");
    let stored = state("a", 3);
    assert!(check_write(Some(&stored), &state("a", 4), &WriteRule::Next).is_ok());
    for bad in [3, 5, 2] {
        let err =
            check_write(Some(&stored), &state("a", bad), &WriteRule::Next).expect_err("serial");
        assert!(err.to_string().contains("stored serial is 3"), "{err}");
    }
    let err = check_write(Some(&stored), &state("b", 4), &WriteRule::Next).expect_err("lineage");
    assert!(err.to_string().contains("lineage a"), "{err}");
    assert!(matches!(err, StateError::Stale { .. }));
    assert!(check_write(None, &state("a", 0), &WriteRule::Next).is_err());
}

#[test]
fn newer_rule() {
    assert!(check_write(None, &state("a", 7), &WriteRule::Newer).is_ok());
    let stored = state("a", 3);
    assert!(check_write(Some(&stored), &state("a", 9), &WriteRule::Newer).is_ok());
    assert!(check_write(Some(&stored), &state("a", 3), &WriteRule::Newer).is_err());
    assert!(check_write(Some(&stored), &state("b", 9), &WriteRule::Newer).is_err());
}

#[test]
fn replace_rule_is_compare_and_swap() {
    let stored = state("a", 3);
    let rule = WriteRule::Replace {
        expected: Some(("a".into(), 3)),
    };
    assert!(check_write(Some(&stored), &state("b", 4), &rule).is_ok());
    assert!(check_write(Some(&stored), &state("b", 3), &rule).is_err());
    let moved = state("a", 4);
    let err = check_write(Some(&moved), &state("b", 5), &rule).expect_err("moved");
    assert!(
        err.to_string().contains("changed since it was inspected"),
        "{err}"
    );
    let absent = WriteRule::Replace { expected: None };
    assert!(check_write(None, &state("b", 5), &absent).is_ok());
    assert!(check_write(Some(&stored), &state("b", 5), &absent).is_err());
}

#[test]
fn stack_names() {
    assert!(check_stack_name("preview-pr-1").is_ok());
    for bad in ["", "../x", ".hidden", "a/b", "a b"] {
        assert!(check_stack_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn holder_display_hides_the_token() {
    let h = LockHolder::current();
    let shown = h.to_string();
    assert!(
        shown.starts_with(&format!("pid {} on ", std::process::id())),
        "{shown}"
    );
    assert!(!shown.contains(&h.token));
    assert_eq!(h.token.len(), 16);
}
