//! [`Settings`]: a stack's configuration as [`crate::Stack::configure`] read it,
//! handed back to [`crate::Stack::build`] by the driver.
//!
//! The driver does not know what a stack's configuration looks like (the
//! built-in stacks read [`crate::config::StackConfig`]; a stack of your own
//! reads whatever it likes, or nothing), so it carries the value type-erased,
//! together with the one thing the driver needs of it: its fingerprint, which a
//! saved plan records (`up --plan` refuses when the configuration changed
//! since the plan was made).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A stack's configuration, with its fingerprint.
#[derive(Clone)]
pub struct Settings {
    fingerprint: String,
    value: Option<Arc<dyn Any + Send + Sync>>,
}

impl Settings {
    /// No configuration (the fingerprint of nothing: the empty string).
    pub fn none() -> Settings {
        Settings {
            fingerprint: String::new(),
            value: None,
        }
    }

    /// `value`, whose [fingerprint](Settings::fingerprint) is `fingerprint`
    /// (e.g. a hash of the file it came from).
    pub fn new<T: Any + Send + Sync>(fingerprint: impl Into<String>, value: T) -> Settings {
        Settings {
            fingerprint: fingerprint.into(),
            value: Some(Arc::new(value)),
        }
    }

    /// Changes whenever the configuration does (recorded in saved plans).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The configuration, when it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.value.as_deref()?.downcast_ref::<T>()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::none()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("fingerprint", &self.fingerprint)
            .field("value", &self.value.as_ref().map(|_| ".."))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn the_value_is_returned_as_its_own_type_only() {
        let settings = Settings::new("abc", 7_u32);
        assert_eq!(settings.get::<u32>(), Some(&7));
        assert_eq!(settings.get::<String>(), None);
        assert_eq!(settings.fingerprint(), "abc");
        assert_eq!(Settings::none().get::<u32>(), None);
        assert_eq!(Settings::none().fingerprint(), "");
    }
}
