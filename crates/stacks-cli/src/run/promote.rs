//! `stacks promote`: production gets exactly the images a preview ran.
//!
//! The images come from the tested-image records
//! ([`preview_core::state::tested`]) that every successful `up preview-pr`
//! appends to, never from a preview's state, so promotion works after the
//! preview is destroyed:
//! - `--from-pr N` (alias `--from preview-pr-N`): the PR's last tested images;
//!   with `--from-sha SHA` as well, that PR's last test of that commit;
//! - `--from-sha SHA` alone: the last test of that commit in any PR;
//! - `--image KEY=REF`, one per image key of the app (`--web-image`/`--api-image`
//!   are `--image web=`/`api=`): only if some successful preview ran exactly
//!   those images; otherwise refused, unless `--untested`, which puts an
//!   `UNTESTED: …` note into the plan (every rendering shows it).
//!
//! Production gets every image the record holds (all the `<key>Image` outputs of
//! the preview), whatever the app's keys are: `web` and `api` for Aphiria,
//! `api` and `worker` for `examples/apps/node-redis`.
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
    let mut images = BTreeMap::new();
    // The aliases first, checked in the order of the flags; `--image web=` wins.
    for (key, flag, alias) in [
        ("web", "--web-image", &source.web_image),
        ("api", "--api-image", &source.api_image),
    ] {
        if let Some(image) = alias {
            PinnedImage::parse(flag, image).map_err(|e| anyhow!(e))?;
            images.insert(key.to_owned(), image.clone());
        }
    }
    for (key, image) in stacks::params::image_flags(&source.images).map_err(|e| anyhow!(e))? {
        PinnedImage::parse(&format!("--image {key}="), &image).map_err(|e| anyhow!(e))?;
        images.insert(key, image);
    }
    if images.is_empty() {
        bail!(
            "promote needs what to promote: --from-pr N, --from-sha SHA, or --image KEY=REF for every image of the app (--web-image/--api-image for web/api)"
        );
    }
    Ok(Source::Images(images))
}

/// `a X and b Y`, `a X, b Y and c Z`: images by key, in key order.
fn listing(images: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = images.iter().map(|(k, i)| format!("{k} {i}")).collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
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
    if found.entry.images.is_empty() {
        bail!(
            "the tested-images record of PR #{} has no images; it cannot be promoted",
            found.pr
        );
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
    if never.is_empty() && images.len() == 1 {
        vec![format!(
            "{} was tested, but only together with other images; name every image of the app (--image KEY=REF per key)",
            listing(images)
        )]
    } else if never.is_empty() {
        vec![format!(
            "{} were each tested, but never together",
            listing(images)
        )]
    } else {
        never
    }
}

/// The `UNTESTED: …` plan note.
fn untested_note(images: &BTreeMap<String, String>) -> String {
    format!(
        "UNTESTED: {} {} not recorded by any successful preview; promoted anyway because of --untested",
        listing(images),
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

/// `up production` with every image of the promotion, as `--image KEY=REF`.
fn production_args(images: &BTreeMap<String, String>) -> StackArgs {
    StackArgs {
        stack: StackName(stacks::StackKind::Production.as_str().to_owned()),
        pr: None,
        web_image: None,
        api_image: None,
        images: images.iter().map(|(k, i)| format!("{k}={i}")).collect(),
    }
}

/// What a tested promotion says before it starts: the test and every image.
fn promoting_message(found: &Found) -> String {
    format!(
        "promoting the images tested by preview-pr-{} at {} (recorded {}): {}",
        found.pr,
        found.entry.short_commit(),
        found.entry.recorded_at,
        listing(&found.entry.images)
    )
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
            "--untested applies only to --image (--web-image/--api-image): --from-pr, --from-sha and --from promote recorded (tested) images"
        );
    }
    let records = backend_at(g, options.records.unwrap_or(&g.backend)).await?;
    let resolved = resolve(records.as_ref(), &source, options.untested).await?;
    let args = production_args(&resolved.images);
    let notes = match &resolved.tested {
        Some(found) => {
            crate::terminal::info(&promoting_message(found));
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
            images: Vec::new(),
            web_image: images.map(|(w, _)| w.into()),
            api_image: images.map(|(_, a)| a.into()),
        }
    }

    /// `--image KEY=REF` flags only.
    fn image_src(flags: &[String]) -> PromoteSource {
        PromoteSource {
            images: flags.to_vec(),
            ..src(None, None, None, None)
        }
    }

    fn pinned(name: &str, n: u8) -> String {
        format!("ghcr.io/o/{name}@sha256:{}", format!("{n:02x}").repeat(32))
    }

    /// The node-redis example's images (`examples/apps/node-redis`: api + worker).
    fn node_redis(n: u8) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("api".to_owned(), pinned("api", n)),
            ("worker".to_owned(), pinned("worker", n)),
        ])
    }

    async fn record(
        backend: &dyn StateBackend,
        pr: u64,
        commit: &str,
        images: BTreeMap<String, String>,
    ) {
        let entry = tested::TestedEntry::now(
            Some(commit.to_owned()),
            images,
            &format!("preview-pr-{pr}"),
            "lineage",
            1,
        );
        tested::append(backend, pr, entry).await.expect("record");
    }

    #[test]
    fn image_flags_name_any_key_and_the_aliases_are_web_and_api() {
        let (api, worker) = (pinned("api", 1), pinned("worker", 1));
        assert_eq!(
            parse(&image_src(&[
                format!("worker={worker}"),
                format!("api={api}")
            ]))
            .expect("keys"),
            Source::Images(node_redis(1))
        );
        // `--web-image`/`--api-image` are `--image web=`/`api=`, and mix with --image.
        let web = pinned("web", 2);
        let mixed = PromoteSource {
            images: vec![format!("api={api}")],
            web_image: Some(web.clone()),
            ..src(None, None, None, None)
        };
        assert_eq!(
            parse(&mixed).expect("mixed"),
            Source::Images(BTreeMap::from([
                ("api".to_owned(), api.clone()),
                ("web".to_owned(), web.clone()),
            ]))
        );
        // `--image web=` wins over `--web-image`.
        let both = PromoteSource {
            images: vec![format!("web={}", pinned("web", 3))],
            web_image: Some(web),
            ..src(None, None, None, None)
        };
        assert_eq!(
            parse(&both).expect("both"),
            Source::Images(BTreeMap::from([("web".to_owned(), pinned("web", 3))]))
        );
        for (flags, says) in [
            (
                vec!["worker=w:1".to_owned()],
                "--image worker= w:1: not pinned by digest",
            ),
            (
                vec!["worker".to_owned()],
                "--image worker: expected KEY=REF",
            ),
            (
                vec![format!("api={api}"), format!("api={api}")],
                "given twice",
            ),
        ] {
            let err = parse(&image_src(&flags)).expect_err(says).to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[tokio::test]
    async fn every_key_of_the_record_is_promoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = preview_core::state::file::FileBackend::new(dir.path());
        let commit = "c".repeat(40);
        record(&backend, 7, &commit, node_redis(1)).await;

        // --from-pr and --from-sha: every image the preview ran, api and worker.
        for source in [
            Source::Pr {
                pr: 7,
                commit: None,
            },
            Source::Commit(commit[..7].to_owned()),
        ] {
            let resolved = resolve(&backend, &source, false).await.expect("resolves");
            assert_eq!(resolved.images, node_redis(1), "{source:?}");
            let found = resolved.tested.as_ref().expect("tested");
            let message = promoting_message(found);
            assert!(
                message.starts_with("promoting the images tested by preview-pr-7 at cccccccccccc")
                    && message.ends_with(&format!(
                        ": api {} and worker {}",
                        pinned("api", 1),
                        pinned("worker", 1)
                    )),
                "{message}"
            );
            let args = production_args(&resolved.images);
            assert_eq!(args.stack.0, "production");
            assert_eq!(
                args.images,
                [
                    format!("api={}", pinned("api", 1)),
                    format!("worker={}", pinned("worker", 1))
                ]
            );
            assert!(args.web_image.is_none() && args.api_image.is_none());
        }

        // --image: the pair the preview ran is tested; one of them alone, or
        // another worker, is refused, naming the keys.
        let resolved = resolve(&backend, &Source::Images(node_redis(1)), false)
            .await
            .expect("tested pair");
        assert_eq!(resolved.tested.expect("tested").pr, 7);
        let only_api = BTreeMap::from([("api".to_owned(), pinned("api", 1))]);
        let err = resolve(&backend, &Source::Images(only_api), false)
            .await
            .expect_err("a subset")
            .to_string();
        assert!(
            err.contains(&format!(
                "api {} was tested, but only together with other images",
                pinned("api", 1)
            )),
            "{err}"
        );
        let mut other = node_redis(1);
        other.insert("worker".into(), pinned("worker", 9));
        let err = resolve(&backend, &Source::Images(other.clone()), false)
            .await
            .expect_err("another worker")
            .to_string();
        assert!(
            err.contains(&format!(
                "worker {} was never recorded",
                pinned("worker", 9)
            )) && err.contains("--untested"),
            "{err}"
        );
        // --untested deploys them, with a note naming every key.
        let resolved = resolve(&backend, &Source::Images(other.clone()), true)
            .await
            .expect("untested");
        assert!(resolved.tested.is_none());
        assert_eq!(
            untested_note(&resolved.images),
            format!(
                "UNTESTED: api {} and worker {} were not recorded by any successful preview; promoted anyway because of --untested",
                pinned("api", 1),
                pinned("worker", 9)
            )
        );
    }

    #[test]
    fn three_keys_are_listed_with_commas() {
        let images = BTreeMap::from([
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "y".to_owned()),
            ("c".to_owned(), "z".to_owned()),
        ]);
        assert_eq!(listing(&images), "a x, b y and c z");
        assert_eq!(listing(&BTreeMap::new()), "");
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
