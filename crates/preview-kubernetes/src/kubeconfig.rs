//! Where the cluster connection comes from, found as kubectl finds it.
//!
//! [`KubeconfigSource::locate`] picks, in kubectl's order: an explicit file
//! (`--kubeconfig`), else every file listed in `KUBECONFIG` (split on `:`, empty
//! entries ignored), else `~/.kube/config`, else the pod's service account.
//! [`KubeconfigSource::load`] reads the files and merges a `KUBECONFIG` list
//! with kube's [`Kubeconfig::merge`] (client-go's rules: the first file to set a
//! value or map key wins, so `current-context` is the first file's). As kubectl
//! does, a listed file that does not exist is skipped; one that cannot be read or
//! parsed is an error naming it.
//!
//! Both take the environment as arguments, so they are tested without touching
//! the process environment; [`crate::KubeProvider::connect`] passes the real one.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the kubeconfig of a connection is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// One file named explicitly (`--kubeconfig FILE`).
    File(PathBuf),
    /// The files listed in `KUBECONFIG`, merged in order.
    Env(Vec<PathBuf>),
    /// The default file, `~/.kube/config`.
    Default(PathBuf),
    /// No kubeconfig: the pod's service account (in-cluster).
    InCluster,
}

impl fmt::Display for KubeconfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeconfigSource::File(path) => write!(f, "{}", path.display()),
            KubeconfigSource::Env(paths) => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "KUBECONFIG={}", list.join(":"))
            }
            KubeconfigSource::Default(path) => write!(f, "{} (default)", path.display()),
            KubeconfigSource::InCluster => f.write_str("in-cluster service account"),
        }
    }
}

/// The kubeconfig that was read, and the context a connection uses from it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The (merged) kubeconfig.
    pub kubeconfig: Kubeconfig,
    /// The context: the one asked for, else the kubeconfig's `current-context`.
    pub context: Option<String>,
}

impl KubeconfigSource {
    /// The source kubectl would use: `explicit`, else the `KUBECONFIG` value
    /// `env` (when it names at least one file), else `~/.kube/config` under
    /// `home` when that file exists, else in-cluster.
    pub fn locate(explicit: Option<&Path>, env: Option<&OsStr>, home: Option<&Path>) -> Self {
        if let Some(path) = explicit {
            return KubeconfigSource::File(path.to_path_buf());
        }
        if let Some(value) = env {
            let paths: Vec<PathBuf> = std::env::split_paths(value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            if !paths.is_empty() {
                return KubeconfigSource::Env(paths);
            }
        }
        match home.map(|h| h.join(".kube").join("config")) {
            Some(path) if path.exists() => KubeconfigSource::Default(path),
            _ => KubeconfigSource::InCluster,
        }
    }

    /// The source for this process: [`KubeconfigSource::locate`] with its
    /// `KUBECONFIG` and home directory.
    pub fn from_process(explicit: Option<&Path>) -> Self {
        let env = std::env::var_os("KUBECONFIG");
        let home = std::env::home_dir();
        Self::locate(explicit, env.as_deref(), home.as_deref())
    }

    /// Reads the kubeconfig (`None` for [`KubeconfigSource::InCluster`]) and
    /// picks the context: `context` when given, else `current-context`.
    /// Errors name the file and say what is wrong, never its contents.
    pub fn load(&self, context: Option<&str>) -> Result<Option<Loaded>, String> {
        let kubeconfig = match self {
            KubeconfigSource::InCluster => return Ok(None),
            KubeconfigSource::File(path) | KubeconfigSource::Default(path) => read(path)?,
            KubeconfigSource::Env(paths) => {
                let present: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
                if present.is_empty() {
                    return Err("none of the files listed in KUBECONFIG exists".to_owned());
                }
                let mut merged = Kubeconfig::default();
                for path in present {
                    merged = merged
                        .merge(read(path)?)
                        .map_err(|e| format!("merging {}: {e}", path.display()))?;
                }
                merged
            }
        };
        let context = context
            .map(str::to_owned)
            .or_else(|| kubeconfig.current_context.clone());
        if let Some(name) = &context
            && !kubeconfig.contexts.iter().any(|c| &c.name == name)
        {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(format!(
                "no context {name:?} (contexts: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        Ok(Some(Loaded {
            kubeconfig,
            context,
        }))
    }
}

impl Loaded {
    /// The options that select [`Loaded::context`].
    pub fn options(&self) -> KubeConfigOptions {
        KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        }
    }

    /// The server URL of the selected context's cluster, if the kubeconfig names one.
    pub fn server(&self) -> Option<String> {
        let context = self.context.as_deref()?;
        let cluster = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)?
            .context
            .as_ref()?
            .cluster
            .clone();
        self.kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster)?
            .cluster
            .as_ref()?
            .server
            .clone()
    }
}

fn read(path: &Path) -> Result<Kubeconfig, String> {
    Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(dir: &Path, file: &str, name: &str, server: &str, current: bool) -> PathBuf {
        let path = dir.join(file);
        let current = if current {
            format!("current-context: {name}\n")
        } else {
            String::new()
        };
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\n{current}clusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\nusers:\n- name: {name}\n  user:\n    token: not-a-secret\n"
            ),
        )
        .expect("write kubeconfig");
        path
    }

    #[test]
    fn a_kubeconfig_list_is_merged_and_the_first_current_context_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = kubeconfig(dir.path(), "a", "first", "https://first.invalid:6443", true);
        let b = kubeconfig(
            dir.path(),
            "b",
            "second",
            "https://second.invalid:6443",
            true,
        );
        let list = std::env::join_paths([&a, &dir.path().join("missing"), &b]).expect("join");
        let source = KubeconfigSource::locate(None, Some(&list), None);
        assert_eq!(
            source,
            KubeconfigSource::Env(vec![a.clone(), dir.path().join("missing"), b.clone()])
        );
        let loaded = source.load(None).expect("load").expect("a kubeconfig");
        assert_eq!(loaded.kubeconfig.contexts.len(), 2);
        assert_eq!(loaded.context.as_deref(), Some("first"));
        assert_eq!(
            loaded.server().as_deref(),
            Some("https://first.invalid:6443")
        );
        // The second file's context, selected by name.
        let loaded = source.load(Some("second")).expect("load").expect("some");
        assert_eq!(
            loaded.server().as_deref(),
            Some("https://second.invalid:6443")
        );
        assert_eq!(loaded.options().context.as_deref(), Some("second"));
    }

    #[test]
    fn an_unknown_context_is_named_with_the_known_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = kubeconfig(dir.path(), "a", "first", "https://first.invalid", true);
        let error = KubeconfigSource::File(a)
            .load(Some("nope"))
            .expect_err("unknown context");
        assert_eq!(error, "no context \"nope\" (contexts: first)");
    }

    #[test]
    fn the_explicit_file_wins_then_kubeconfig_then_home_then_in_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let explicit = dir.path().join("explicit");
        let env = std::ffi::OsString::from("/x/one:/x/two");
        assert_eq!(
            KubeconfigSource::locate(Some(&explicit), Some(&env), Some(dir.path())),
            KubeconfigSource::File(explicit)
        );
        // An empty KUBECONFIG is as if unset.
        let empty = std::ffi::OsString::from("::");
        assert_eq!(
            KubeconfigSource::locate(None, Some(&empty), Some(dir.path())),
            KubeconfigSource::InCluster
        );
        std::fs::create_dir_all(dir.path().join(".kube")).expect("mkdir");
        let home = kubeconfig(
            &dir.path().join(".kube"),
            "config",
            "home",
            "https://h",
            true,
        );
        assert_eq!(
            KubeconfigSource::locate(None, None, Some(dir.path())),
            KubeconfigSource::Default(home)
        );
        assert_eq!(
            KubeconfigSource::locate(None, Some(&env), Some(dir.path())).to_string(),
            "KUBECONFIG=/x/one:/x/two"
        );
        let error = KubeconfigSource::Env(vec!["/x/one".into()])
            .load(None)
            .expect_err("no file");
        assert_eq!(error, "none of the files listed in KUBECONFIG exists");
    }
}
