//! Renderings of a [`Plan`](crate::plan::Plan): pure functions from a plan to text.
//!
//! - [`text()`]: `pulumi preview --diff`-like text for terminals and CI logs, with ANSI
//!   colours only when asked ([`TextOptions::color`]).
//! - [`json()`]: a stable, versioned machine-readable document
//!   (schema in [`mod@json`], version [`crate::plan::PLAN_SCHEMA_VERSION`]).
//! - [`markdown()`]: a pull-request comment (summary table, collapsible ```` ```diff ````
//!   block, truncated with a visible note to stay under GitHub's comment limit).
//!
//! Secret values are already [`Shown::Secret`] in a plan and render as
//! [`SECRET_PLACEHOLDER`] everywhere; a value known only once the plan is applied
//! ([`Shown::KnownAfterApply`]) renders as [`KNOWN_AFTER_APPLY`], unquoted. Text and Markdown shorten values longer than
//! [`MAX_VALUE_CHARS`] characters; JSON never shortens.

pub mod json;
pub mod markdown;
pub mod text;

pub use json::json;
pub use markdown::{DEFAULT_MAX_CHARS, MarkdownOptions, markdown};
pub use text::{TextOptions, text};

use crate::plan::{ChangeKind, FieldChange, KNOWN_AFTER_APPLY, SECRET_PLACEHOLDER, Shown, Summary};

/// Values longer than this (in characters, as compact JSON) are shortened in text and
/// Markdown renderings.
pub const MAX_VALUE_CHARS: usize = 200;

/// `2 step(s) not validated by the server: …` (plans with [`crate::plan::Step::unvalidated`] steps).
pub fn unvalidated_line(count: usize) -> String {
    format!(
        "{count} step(s) {}: the credential may not dry-run them (403), so their changes are the planner's local diff; an immutable field or an admission rejection shows only when applied.",
        crate::plan::NOT_VALIDATED
    )
}

/// `Plan: 3 to create, 1 to update, 0 to replace, 1 to delete, 12 unchanged.`
/// (`, N to import` and `, N refused (not the stack's)` are added before
/// `unchanged` when the plan imports or refuses anything).
pub fn summary_line(summary: &Summary) -> String {
    let import = if summary.import > 0 {
        format!(", {} to import", summary.import)
    } else {
        String::new()
    };
    let refuse = if summary.refuse > 0 {
        format!(", {} refused (not the stack's)", summary.refuse)
    } else {
        String::new()
    };
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete{import}{refuse}, {} unchanged.",
        summary.create, summary.update, summary.replace, summary.delete, summary.no_op
    )
}

/// A value as compact JSON (`[secret]` for secrets), shortened past [`MAX_VALUE_CHARS`].
pub(crate) fn short_value(shown: &Shown) -> String {
    match shown {
        Shown::Secret(_) => SECRET_PLACEHOLDER.to_owned(),
        Shown::KnownAfterApply(_) => KNOWN_AFTER_APPLY.to_owned(),
        Shown::Value(value) => shorten(&value.to_string()),
    }
}

/// `text` cut to [`MAX_VALUE_CHARS`] characters, noting the full length.
pub(crate) fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_VALUE_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    format!("{cut}… ({count} chars)")
}

/// A free-form message (reason) on one line: control characters (newlines, escape
/// sequences from an API message) become spaces; shortened like values.
pub(crate) fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    shorten(flat.trim())
}

/// A note on one line (control characters become spaces), never shortened:
/// a note may carry full image references.
pub(crate) fn one_line_full(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The symbol of a field change (`+`, `-`, `~`).
pub(crate) fn change_symbol(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "+",
        ChangeKind::Removed => "-",
        ChangeKind::Changed => "~",
    }
}

/// `path: value`, `path: value` or `path: old => new` for added, removed, changed.
pub(crate) fn change_text(change: &FieldChange) -> String {
    let show = |v: &Option<Shown>| v.as_ref().map_or_else(|| "null".to_owned(), short_value);
    match change.kind {
        ChangeKind::Added => format!("{}: {}", change.path, show(&change.new)),
        ChangeKind::Removed => format!("{}: {}", change.path, show(&change.old)),
        ChangeKind::Changed => format!(
            "{}: {} => {}",
            change.path,
            show(&change.old),
            show(&change.new)
        ),
    }
}

#[cfg(test)]
mod tests;
