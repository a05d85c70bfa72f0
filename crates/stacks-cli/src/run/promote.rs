//! `stacks promote`: production gets exactly the images a preview ran.
//!
//! The images come from the tested-image records
//! ([`preview_core::state::tested`]) that every successful `up preview-pr`
//! appends to, never from a preview's state, so promotion works after the
//! preview is destroyed:
//! - `--from-pr N` (alias `--from preview-pr-N`): the PR's last tested images;
//!   with `--from-sha SHA` as well, that PR's last test of that commit;
//! - `--from-sha SHA` alone: the last test of that commit in any PR;
//! - `--web-image`/`--api-image`: only if some successful preview ran exactly
//!   that pair; otherwise refused, unless `--untested`, which puts an
//!   `UNTESTED: …` note into the plan (every rendering shows it).
//!
//! Everything given is checked before the records are read; nothing is applied
//! before the images are resolved. The records are read from `--records` (or
//! `PREVIEW_RECORDS_BACKEND`), by default from `--backend`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use preview_core::state::StateBackend;
use preview_core::state::tested::{self, Found, TestedRecord};
use serde_json::{Value, json};
use stacks::{PinnedImage, PrNumber};

use super::{Import, Save, UpExtras, backend_at, preview_cmd, up_cmd};
use crate::cli::{ApplyArgs, GlobalArgs, PlanFormat, PromoteSource, StackArgs, StackName};

/// Settings of one promotion beside its source.
pub(super) struct Options<'a> {
    /// `--untested`.
    pub untested: bool,
    /// `--records URL`.
    pub records: Option<&'a str>,
    /// `--preview`, with its format and output file.
    pub preview: Option<(PlanFormat, Option<&'a Path>)>,
}

/// A parsed source (no IO yet).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// A PR's images, optionally those of one commit.
    Pr { pr: u64, commit: Option<String> },
    /// A commit's images, in any PR.
    Commit(String),
    /// Images named on the command line.
    Images(BTreeMap<String, String>),
}

fn pr_number(flag: &str, raw: &str) -> Result<u64> {
    let pr = PrNumber::parse(raw).map_err(|e| anyhow!(e.replacen("--pr", flag, 1)))?;
    pr.as_str()
        .parse::<u64>()
        .map_err(|_| anyhow!("{flag} {raw}: too large a number"))
}

/// `--from-sha`: 7 to 64 hex characters (a unique prefix or the full SHA).
fn commit_prefix(raw: &str) -> Result<String> {
    let sha = raw.trim().to_ascii_lowercase();
    if (7..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        bail!(
            "--from-sha {raw}: not a commit SHA; pass the full SHA (or at least 7 of its hex characters)"
        )
    }
}

fn parse(source: &PromoteSource) -> Result<Source> {
    if let Some(stack) = &source.from {
        let Some(n) = stack.strip_prefix("preview-pr-") else {
            bail!(
                "--from {stack}: only a preview stack can be promoted (preview-pr-N; or use --from-pr N)"
            );
        };
        return Ok(Source::Pr {
            pr: pr_number("--from", n)?,
            commit: None,
        });
    }
    let commit = source.from_sha.as_deref().map(commit_prefix).transpose()?;
    if let Some(raw) = &source.from_pr {
        return Ok(Source::Pr {
            pr: pr_number("--from-pr", raw)?,
            commit,
        });
    }
    if let Some(commit) = commit {
        return Ok(Source::Commit(commit));
    }
    match (&source.web_image, &source.api_image) {
        (Some(web), Some(api)) => {
            PinnedImage::parse("--web-image", web).map_err(|e| anyhow!(e))?;
            PinnedImage::parse("--api-image", api).map_err(|e| anyhow!(e))?;
            Ok(Source::Images(BTreeMap::from([
                ("api".to_owned(), api.clone()),
                ("web".to_owned(), web.clone()),
            ])))
        }
        _ => bail!(
            "promote needs what to promote: --from-pr N, --from-sha SHA, or --web-image and --api-image"
        ),
    }
}

/// What is promoted, and why it may be.
#[derive(Debug)]
struct Resolved {
    images: BTreeMap<String, String>,
    /// The record that tested them; `None`: untested (only with `--untested`).
    tested: Option<Found>,
}

fn not_recorded(backend: &dyn StateBackend, what: &str, hint: &str) -> anyhow::Error {
    anyhow!(
        "no successful preview recorded {what} in {}; {hint}",
        backend.describe()
    )
}

/// Looks the source up in the records.
async fn resolve(backend: &dyn StateBackend, source: &Source, untested: bool) -> Result<Resolved> {
    let found = match source {
        Source::Pr { pr, commit } => {
            let record = tested::read(backend, *pr).await?.ok_or_else(|| {
                not_recorded(
                    backend,
                    &format!("images for PR #{pr}"),
                    &format!(
                        "deploy its preview first (`stacks up preview-pr --pr {pr} --commit SHA …`; previews deployed before tested-image records existed need one more `up`)"
                    ),
                )
            })?;
            match commit {
                None => record.latest().map(|entry| Found {
                    pr: *pr,
                    entry: entry.clone(),
                }),
                Some(commit) => {
                    let found = tested::find_commit(std::slice::from_ref(&record), commit)
                        .map_err(|e| anyhow!("--from-sha: {e}"))?;
                    if found.is_none() {
                        let last = record
                            .latest()
                            .map(|e| format!("{} (recorded {})", e.short_commit(), e.recorded_at))
                            .unwrap_or_else(|| "none".into());
                        bail!(
                            "PR #{pr} has no successful preview of commit {commit} (its last tested commit is {last}); deploy the preview of {commit} first, or promote by --from-sha of a tested commit"
                        );
                    }
                    found
                }
            }
            .ok_or_else(|| anyhow!("the record of PR #{pr} has no entry"))?
        }
        Source::Commit(commit) => {
            let records = tested::all(backend).await?;
            tested::find_commit(&records, commit)
                .map_err(|e| anyhow!("--from-sha: {e}"))?
                .ok_or_else(|| {
                    not_recorded(
                        backend,
                        &format!("images built from commit {commit}"),
                        "deploy a preview of that commit with `stacks up preview-pr --commit SHA …` first",
                    )
                })?
        }
        Source::Images(images) => {
            let records = tested::all(backend).await?;
            match tested::find_images(&records, images) {
                Some(found) => {
                    if untested {
                        crate::terminal::info(&format!(
                            "note: --untested is not needed: these images were tested by preview-pr-{} ({})",
                            found.pr,
                            found.entry.short_commit()
                        ));
                    }
                    found
                }
                None if untested => {
                    return Ok(Resolved {
                        images: images.clone(),
                        tested: None,
                    });
                }
                None => bail!(
                    "refusing to promote images no successful preview ran: {}; promote what a preview tested (--from-pr N or --from-sha SHA), or pass --untested to deploy them anyway (the plan will say so)",
                    untested_reasons(&records, images).join("; ")
                ),
            }
        }
    };
    for component in ["api", "web"] {
        if !found.entry.images.contains_key(component) {
            bail!(
                "the tested-images record of PR #{} has no {component} image; it cannot be promoted",
                found.pr
            );
        }
    }
    Ok(Resolved {
        images: found.entry.images.clone(),
        tested: Some(found),
    })
}

/// Why each image counts as untested.
fn untested_reasons(records: &[TestedRecord], images: &BTreeMap<String, String>) -> Vec<String> {
    let never: Vec<String> = images
        .iter()
        .filter(|(_, image)| !tested::ever_tested(records, image))
        .map(|(component, image)| format!("{component} {image} was never recorded"))
        .collect();
    if never.is_empty() {
        vec![format!(
            "{} were each tested, but never together",
            images
                .iter()
                .map(|(c, i)| format!("{c} {i}"))
                .collect::<Vec<_>>()
                .join(" and ")
        )]
    } else {
        never
    }
}

/// The `UNTESTED: …` plan note.
fn untested_note(images: &BTreeMap<String, String>) -> String {
    format!(
        "UNTESTED: {} {} not recorded by any successful preview; promoted anyway because of --untested",
        images
            .iter()
            .map(|(c, i)| format!("{c} {i}"))
            .collect::<Vec<_>>()
            .join(" and "),
        if images.len() == 1 { "was" } else { "were" }
    )
}

fn promotion_json(resolved: &Resolved) -> Value {
    json!({
        "images": resolved.images,
        "untested": resolved.tested.is_none(),
        "testedBy": resolved.tested.as_ref().map(|f| json!({
            "pr": f.pr,
            "stack": f.entry.stack,
            "commit": f.entry.commit,
            "recordedAt": f.entry.recorded_at,
        })),
    })
}

/// Runs `stacks promote`.
pub(super) async fn run(
    g: &GlobalArgs,
    source: &PromoteSource,
    options: &Options<'_>,
    apply: &ApplyArgs,
) -> Result<ExitCode> {
    let source = parse(source)?;
    if options.untested && !matches!(source, Source::Images(_)) {
        bail!(
            "--untested applies only to --web-image/--api-image: --from-pr, --from-sha and --from promote recorded (tested) images"
        );
    }
    let records = backend_at(g, options.records.unwrap_or(&g.backend)).await?;
    let resolved = resolve(records.as_ref(), &source, options.untested).await?;
    let image = |c: &str| resolved.images.get(c).cloned();
    let args = StackArgs {
        stack: StackName(stacks::StackKind::Production.as_str().to_owned()),
        pr: None,
        web_image: image("web"),
        api_image: image("api"),
        images: Vec::new(),
    };
    let notes = match &resolved.tested {
        Some(found) => {
            crate::terminal::info(&format!(
                "promoting the images tested by preview-pr-{} at {} (recorded {}): web {} and api {}",
                found.pr,
                found.entry.short_commit(),
                found.entry.recorded_at,
                args.web_image.as_deref().unwrap_or_default(),
                args.api_image.as_deref().unwrap_or_default()
            ));
            Vec::new()
        }
        None => {
            let note = untested_note(&resolved.images);
            eprintln!("warning: {note}");
            vec![note]
        }
    };
    match options.preview {
        Some((format, out)) => {
            let save = out.map_or(Save::Nothing, Save::Rendering);
            preview_cmd(g, &args, format, save, notes).await?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let extras = UpExtras {
                notes,
                promotion: Some(promotion_json(&resolved)),
                ..UpExtras::default()
            };
            up_cmd(g, &args, apply, Import::Nothing, &extras).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(
        from: Option<&str>,
        pr: Option<&str>,
        sha: Option<&str>,
        images: Option<(&str, &str)>,
    ) -> PromoteSource {
        PromoteSource {
            from: from.map(Into::into),
            from_pr: pr.map(Into::into),
            from_sha: sha.map(Into::into),
            web_image: images.map(|(w, _)| w.into()),
            api_image: images.map(|(_, a)| a.into()),
        }
    }

    #[test]
    fn sources_are_checked_before_any_io() {
        assert_eq!(
            parse(&src(Some("preview-pr-12"), None, None, None)).expect("alias"),
            Source::Pr {
                pr: 12,
                commit: None
            }
        );
        let sha = "a".repeat(40);
        assert_eq!(
            parse(&src(None, Some("12"), Some(&sha.to_uppercase()), None)).expect("pr+sha"),
            Source::Pr {
                pr: 12,
                commit: Some(sha.clone())
            }
        );
        assert_eq!(
            parse(&src(None, None, Some("abcdef1"), None)).expect("prefix"),
            Source::Commit("abcdef1".into())
        );
        for (bad, says) in [
            (
                src(Some("production"), None, None, None),
                "--from production",
            ),
            (src(Some("preview-pr-0"), None, None, None), "--from 0"),
            (
                src(None, Some("x"), None, None),
                "--from-pr x: not a number",
            ),
            (src(None, None, Some("abc"), None), "--from-sha abc"),
            (src(None, None, Some("zzzzzzzz"), None), "not a commit SHA"),
            (
                src(None, None, None, Some(("web:1", "api@sha256:x"))),
                "--web-image web:1",
            ),
            (src(None, None, None, None), "promote needs what to promote"),
        ] {
            let err = parse(&bad).expect_err(says).to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn untested_wording() {
        let images = BTreeMap::from([
            ("api".to_owned(), "r/api@sha256:1".to_owned()),
            ("web".to_owned(), "r/web@sha256:2".to_owned()),
        ]);
        let note = untested_note(&images);
        assert!(
            note.starts_with(
                "UNTESTED: api r/api@sha256:1 and web r/web@sha256:2 were not recorded"
            ),
            "{note}"
        );
        let reasons = untested_reasons(&[], &images);
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("never recorded"));
    }
}
