//! Templates of the app spec: text with `{placeholder}`s (`{{` and `}}` are
//! literal braces), resolved against a [`Context`] of one stack instance.
//!
//! Placeholders:
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{pr}` | the PR number (preview-pr only) |
//! | `{domain}`, `{namespace}`, `{stack}`, `{app}` | the config's `domain`, the app's namespace, the stack (`preview-pr`), the config's `app` |
//! | `{db.host}`, `{db.port}`, `{db.name}`, `{db.user}` | the database (with `addons.postgres`) |
//! | `{db.password}` | its password (secret: only in `secretEnv`) |
//! | `{host.ROUTE}`, `{url.ROUTE}` | a route's host, `https://<host>` (not in route hosts) |
//! | `{hosts.web}`, `{hosts.api}` | the config's `hosts.web` / `hosts.api` (local, production) |
//! | `{service.NAME.host}`, `{service.NAME.url}` | a service's in-namespace name, `http://<name>:<servicePort>` |
//! | `{values.NAME}` | a value (the spec's default, or the config's `values.NAME`) |
//!
//! Checking is in two steps, both before any side effect: [`placeholders`]
//! parses a template (syntax errors) and the spec check refuses names no stack
//! knows; [`Context::render`] refuses a placeholder the stack has no value for.

use std::collections::BTreeMap;

use preview_core::secret::SecretString;

/// A placeholder's value.
#[derive(Clone, Debug)]
pub enum Var {
    /// Plain text.
    Plain(String),
    /// A secret (only secret templates may use it).
    Secret(SecretString),
}

/// The placeholders of `template`, in order; an error says what is wrong.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for piece in pieces(template)? {
        if let Piece::Var(name) = piece {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some(at) = rest.find(['{', '}']) else {
            out.push(Piece::Text(rest));
            break;
        };
        out.push(Piece::Text(&rest[..at]));
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push(Piece::Text("{"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push(Piece::Text("}"));
            rest = after;
        } else if tail.starts_with('}') {
            return Err(format!(
                "`}}` without `{{` in {template:?} (write `}}}}` for a literal brace)"
            ));
        } else {
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "`{{` without `}}` in {template:?} (write `{{{{` for a literal brace)"
                ));
            };
            let name = &tail[1..end];
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(format!(
                    "`{{{name}}}` is not a placeholder (names are letters, digits, `.`, `_`, `-`)"
                ));
            }
            out.push(Piece::Var(name));
            rest = &tail[end + 1..];
        }
    }
    Ok(out)
}

/// The values of the placeholders in one stack instance.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Which stack (for messages).
    pub stack: String,
    vars: BTreeMap<String, Var>,
}

impl Context {
    /// An empty context for `stack`.
    pub fn new(stack: impl Into<String>) -> Self {
        Context {
            stack: stack.into(),
            vars: BTreeMap::new(),
        }
    }

    /// Sets a plain placeholder.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), Var::Plain(value.into()));
    }

    /// Sets a secret placeholder.
    pub fn set_secret(&mut self, name: impl Into<String>, value: SecretString) {
        self.vars.insert(name.into(), Var::Secret(value));
    }

    /// Whether `name` has a value.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    fn lookup(&self, name: &str) -> Result<&Var, String> {
        self.vars.get(name).ok_or_else(|| {
            let hint = if name == "pr" {
                " (only preview-pr has a PR number: give this key a value per stack)".to_owned()
            } else {
                let known: Vec<String> = self.vars.keys().map(|k| format!("{{{k}}}")).collect();
                format!("; known here: {}", known.join(", "))
            };
            format!(
                "placeholder `{{{name}}}` has no value in the {} stack{hint}",
                self.stack
            )
        })
    }

    /// Renders a plain template; a secret placeholder is refused.
    pub fn render(&self, template: &str) -> Result<String, String> {
        self.expand(template, false)
    }

    /// Renders a secret template (plain and secret placeholders alike).
    pub fn render_secret(&self, template: &str) -> Result<SecretString, String> {
        self.expand(template, true).map(SecretString::new)
    }

    /// `template` with its placeholders filled in; a secret one only when `secrets`.
    fn expand(&self, template: &str, secrets: bool) -> Result<String, String> {
        let mut out = String::new();
        for piece in pieces(template)? {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(name) => match self.lookup(name)? {
                    Var::Plain(value) => out.push_str(value),
                    Var::Secret(value) if secrets => out.push_str(value.expose()),
                    Var::Secret(_) => {
                        return Err(format!(
                            "`{{{name}}}` is secret: use it only in `secretEnv`"
                        ));
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let mut c = Context::new("preview-pr");
        c.set("pr", "123");
        c.set("domain", "aphiria.com");
        c.set_secret("db.password", SecretString::new("pw"));
        c
    }

    #[test]
    fn placeholders_and_literal_braces() {
        let c = context();
        assert_eq!(
            c.render("{pr}.pr.{domain}").expect("renders"),
            "123.pr.aphiria.com"
        );
        assert_eq!(c.render("{{x}} {pr}").expect("renders"), "{x} 123");
        assert_eq!(
            placeholders("a {b.c} {{d}} {e-f}").expect("parses"),
            ["b.c", "e-f"]
        );
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        assert!(
            placeholders("{pr")
                .expect_err("open")
                .contains("without `}`")
        );
        assert!(
            placeholders("pr}")
                .expect_err("close")
                .contains("without `{`")
        );
        assert!(
            placeholders("{a b}")
                .expect_err("name")
                .contains("not a placeholder")
        );
        assert!(placeholders("{}").is_err());
    }

    #[test]
    fn unknown_and_secret_placeholders_are_refused() {
        let c = context();
        let err = c.render("{nope}").expect_err("unknown");
        assert!(
            err.contains("`{nope}` has no value in the preview-pr stack"),
            "{err}"
        );
        assert!(err.contains("{domain}"), "{err}");
        let local = Context::new("local");
        assert!(
            local
                .render("{pr}")
                .expect_err("pr")
                .contains("only preview-pr")
        );
        assert!(
            c.render("{db.password}")
                .expect_err("secret")
                .contains("secretEnv")
        );
        assert_eq!(
            c.render_secret("x{db.password}").expect("secret").expose(),
            "xpw"
        );
    }
}
