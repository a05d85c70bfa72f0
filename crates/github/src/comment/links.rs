//! The URLs and images a comment shows, for any app: `--url LABEL=URL`,
//! `--image KEY=REF`, and `--outputs-file` (the `stacks outputs --json` of the
//! stack: every `<route>Url` and `<key>Image` output).
//!
//! `web` and `api` are Aphiria's labels: they fill the comment's web/API rows
//! exactly as `--web-url`/`--api-url`/`--web-digest`/`--api-digest` do; every
//! other label gets a row of its own (`🌐 app`, `📦 worker image`), in label
//! order. Every value is validated as the old flags' are (an http(s) URL, an
//! image pinned by digest), and a label is a plain name, so nothing that reaches
//! the comment can carry Markdown.

use std::collections::BTreeMap;

use serde_json::Value;

use super::CommentContent;
use crate::validate;

/// A value check (`validate::http_url`, `validate::pinned_image`).
type Check = fn(&str) -> Result<String, String>;

/// One `LABEL=VALUE` flag, its value validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The route or image key (`web`, `app`, `worker`).
    pub label: String,
    /// The URL or the pinned image.
    pub value: String,
}

/// A label: 1 to 63 ASCII letters, digits, `-` or `_`, starting with a letter or digit.
fn label(flag: &str, text: &str) -> Result<String, String> {
    let ok = (1..=63).contains(&text.len())
        && text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{flag} {text:?}: not a label (1–63 letters, digits, '-' or '_', e.g. the route or image key)"
        ))
    }
}

fn labelled(flag: &str, example: &str, text: &str, check: Check) -> Result<Labelled, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("{text:?}: expected {example}"));
    };
    Ok(Labelled {
        label: label(flag, key.trim())?,
        value: check(value.trim())?,
    })
}

/// `--url LABEL=URL` (a clap value parser).
pub fn url_flag(text: &str) -> Result<Labelled, String> {
    labelled(
        "--url",
        "LABEL=URL, e.g. app=https://7.pr.example.com",
        text,
        validate::http_url,
    )
}

/// `--image KEY=REF` (a clap value parser).
pub fn image_flag(text: &str) -> Result<Labelled, String> {
    labelled(
        "--image",
        "KEY=NAME@sha256:<64 hex>, e.g. worker=ghcr.io/o/worker@sha256:…",
        text,
        validate::pinned_image,
    )
}

/// What the comment shows of URLs and images, by label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// URLs by route.
    pub urls: BTreeMap<String, String>,
    /// Images by key.
    pub images: BTreeMap<String, String>,
}

impl Links {
    /// The `*Url` and `*Image` outputs of `stacks outputs --json` (a JSON object of
    /// outputs by name; other outputs are ignored). `source` names the file in errors.
    pub fn from_outputs(source: &str, text: &str) -> Result<Self, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            format!("{source}: not the output of `stacks outputs --json` (JSON): {e}")
        })?;
        let Value::Object(outputs) = doc else {
            return Err(format!(
                "{source}: not the output of `stacks outputs --json` (expected an object of outputs by name)"
            ));
        };
        let mut links = Links::default();
        for (name, value) in &outputs {
            let (kind, prefix, check): (_, _, Check) = if let Some(route) = name.strip_suffix("Url")
            {
                (&mut links.urls, route, validate::http_url)
            } else if let Some(key) = name.strip_suffix("Image") {
                (&mut links.images, key, validate::pinned_image)
            } else {
                continue;
            };
            let text = value
                .as_str()
                .ok_or_else(|| format!("{source}: output `{name}` is not a string: {value}"))?;
            let key = label(&format!("{source}: output `{name}`"), prefix)?;
            let checked = check(text).map_err(|e| format!("{source}: output `{name}`: {e}"))?;
            kind.insert(key, checked);
        }
        Ok(links)
    }

    /// Adds flags over what is there; the same label twice among `flags` is an error.
    pub fn add(&mut self, flag: &str, flags: &[Labelled], images: bool) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for f in flags {
            if !seen.insert(f.label.as_str()) {
                return Err(format!(
                    "{flag} {}=…: given twice; pass one per label",
                    f.label
                ));
            }
            let map = if images {
                &mut self.images
            } else {
                &mut self.urls
            };
            map.insert(f.label.clone(), f.value.clone());
        }
        Ok(())
    }

    /// Fills the comment: `web`/`api` into its web/API rows, the others as rows of their own.
    pub fn fill(mut self, content: &mut CommentContent) {
        content.web_url = self.urls.remove("web");
        content.api_url = self.urls.remove("api");
        content.urls = self.urls.into_iter().collect();
        content.web_image = self.images.remove("web");
        content.api_image = self.images.remove("api");
        content.images = self.images.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(name: &str) -> String {
        format!("ghcr.io/o/{name}@sha256:{}", "a".repeat(64))
    }

    #[test]
    fn flags_are_label_equals_a_checked_value() {
        assert_eq!(
            url_flag("app=https://7.pr.example.com").expect("url"),
            Labelled {
                label: "app".into(),
                value: "https://7.pr.example.com".into()
            }
        );
        assert_eq!(
            image_flag(&format!("worker={}", pinned("worker")))
                .expect("image")
                .label,
            "worker"
        );
        for (bad, says) in [
            (url_flag("https://x.example.com"), "expected LABEL=URL"),
            (url_flag("a|b=https://x.example.com"), "not a label"),
            (url_flag("=https://x.example.com"), "not a label"),
            (url_flag("app=ftp://x"), "not an http(s) URL"),
            (image_flag("worker=w:1"), "not an image pinned by digest"),
        ] {
            let err = bad.expect_err(says);
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn outputs_give_every_url_and_image() {
        let text = serde_json::json!({
            "appUrl": "https://7.pr.example.com",
            "apiImage": pinned("api"),
            "workerImage": pinned("worker"),
            "namespace": "preview-pr-7",
            "replicas": 2,
        })
        .to_string();
        let links = Links::from_outputs("outputs.json", &text).expect("outputs");
        assert_eq!(
            links.urls,
            BTreeMap::from([("app".to_owned(), "https://7.pr.example.com".to_owned())])
        );
        assert_eq!(links.images.keys().collect::<Vec<_>>(), ["api", "worker"]);
        let mut content = CommentContent::default();
        links.fill(&mut content);
        assert_eq!(content.api_image, Some(pinned("api")));
        assert_eq!(content.web_url, None);
        assert_eq!(
            content.urls,
            [("app".to_owned(), "https://7.pr.example.com".to_owned())]
        );
        assert_eq!(content.images, [("worker".to_owned(), pinned("worker"))]);

        for (doc, says) in [
            ("[]".to_owned(), "expected an object"),
            ("{".to_owned(), "not the output of `stacks outputs --json`"),
            (
                r#"{"appUrl": 3}"#.to_owned(),
                "output `appUrl` is not a string",
            ),
            (
                r#"{"webImage": "web:1"}"#.to_owned(),
                "outputs.json: output `webImage`: \"web:1\" is not an image pinned by digest",
            ),
            (
                r#"{"Url": "https://x.example.com"}"#.to_owned(),
                "output `Url` \"\": not a label",
            ),
        ] {
            let err = Links::from_outputs("outputs.json", &doc).expect_err(says);
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_a_label_given_twice_is_refused() {
        let mut links = Links::default();
        links
            .urls
            .insert("web".into(), "https://old.example.com".into());
        let new = url_flag("web=https://new.example.com").expect("url");
        links
            .add("--url", std::slice::from_ref(&new), false)
            .expect("add");
        assert_eq!(links.urls["web"], "https://new.example.com");
        let err = links
            .add("--url", &[new.clone(), new], false)
            .expect_err("twice");
        assert!(err.contains("--url web=…: given twice"), "{err}");
    }
}
