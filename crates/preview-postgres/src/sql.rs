//! Pure SQL helpers: identifier checks, quoting and the ownership marker.
//!
//! No SQL is built from unchecked input: names are validated against
//! `[a-z_][a-z0-9_]{0,62}` first and then quoted anyway.

/// Checks a database or role name; the error says what is wrong.
pub fn check_identifier(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if name.len() > 63 {
        return Err(format!(
            "{what} {name:?} is {} characters; PostgreSQL allows 63",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "{what} {name:?} contains {c:?}; use lowercase letters, digits and '_'"
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("{what} {name:?} starts with a digit"));
    }
    Ok(())
}

/// Quotes an identifier (`"name"`, doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (`'text'`, doubling embedded quotes).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Revokes CONNECT on the maintenance and template databases from PUBLIC:
/// only superusers (and roles granted it explicitly) may connect to them.
///
/// Every preview's create runs it, and a REVOKE rewrites the database's
/// catalog row even when nothing changes: two at the same time fail with
/// `tuple concurrently updated` (found by 100 PR stacks applied at once). So
/// it runs in its own transaction under a transaction-scoped advisory lock
/// (key `hashtext('preview-envs/system-databases')`, the same in the Job
/// script `database-job.sh`): creates of different previews take turns for
/// these two statements only (a few milliseconds).
pub const REVOKE_SYSTEM_DATABASES: &str = "BEGIN; SELECT pg_advisory_xact_lock(hashtext('preview-envs/system-databases')); REVOKE CONNECT ON DATABASE postgres FROM PUBLIC; REVOKE CONNECT ON DATABASE template1 FROM PUBLIC; COMMIT";

/// Prefix of the temporary names databases are created under (reserved for the engine).
pub const TEMP_PREFIX: &str = "preview_envs_tmp_";

/// The temporary name `name` is created under before it is marked and renamed:
/// the final name only ever exists with the ownership marker on it.
pub fn temp_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    format!("{TEMP_PREFIX}{}", &hex::encode(digest)[..16])
}

/// The COMMENT that marks a database (or its role) as owned by a stack.
pub fn marker_comment(stack: &str) -> String {
    format!("managed-by=preview-envs stack={stack}")
}

/// The stack named by a database COMMENT, when it is our marker.
pub fn marker_stack(comment: &str) -> Option<&str> {
    comment.strip_prefix("managed-by=preview-envs stack=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_identifier("database", "aphiria_pr_123").is_ok());
        assert!(check_identifier("database", "").is_err());
        assert!(
            check_identifier("database", "Aphiria")
                .expect_err("upper")
                .contains("'A'")
        );
        assert!(check_identifier("database", "x; DROP DATABASE y").is_err());
        assert!(
            check_identifier("database", "1abc")
                .expect_err("digit")
                .contains("digit")
        );
        assert!(
            check_identifier("database", &"a".repeat(64))
                .expect_err("long")
                .contains("64 characters")
        );
    }

    #[test]
    fn temp_names_are_valid_short_and_distinct() {
        let a = temp_name("aphiria_pr_1");
        assert!(check_identifier("temp", &a).is_ok(), "{a}");
        assert!(a.len() <= 63);
        assert_ne!(a, temp_name("aphiria_pr_2"));
        assert_eq!(a, temp_name("aphiria_pr_1"));
    }

    #[test]
    fn quoting_and_marker() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            marker_stack(&marker_comment("preview-pr-1")),
            Some("preview-pr-1")
        );
        assert_eq!(marker_stack("someone else's database"), None);
    }
}
