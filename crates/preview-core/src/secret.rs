//! Secret values that cannot be printed by accident.
//!
//! [`SecretString`] has no `Display`, a redacting `Debug`, and serialises as
//! `[secret]`; the only way to the plain text is [`SecretString::expose`], which
//! is easy to grep for.

use std::fmt;

use crate::plan::SECRET_PLACEHOLDER;

/// A secret value (password, token, key).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a plain value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The plain value. Call only where the value is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_PLACEHOLDER)
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SECRET_PLACEHOLDER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = SecretString::new("hunter2-canary");
        assert_eq!(format!("{s:?}"), "[secret]");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"[secret]\"");
        assert_eq!(s.expose(), "hunter2-canary");
    }
}
