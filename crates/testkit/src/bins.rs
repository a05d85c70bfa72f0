//! Locating the binaries the kit runs.
//!
//! Order of precedence for each binary:
//! 1. an explicit environment variable (`PREVIEW_ETCD`, `PREVIEW_KUBECTL`,
//!    `PREVIEW_CERT_MANAGER` name a file;
//!    `PREVIEW_KUBE_BIN_DIR`, `PREVIEW_PG_BIN_DIR` name a directory), as printed by
//!    `scripts/control-plane.sh env`;
//! 2. the cache the install script builds into,
//!    `${PREVIEW_CACHE_DIR:-$HOME/.cache/preview-envs}/control-plane/bin`;
//! 3. `PATH` (and, for PostgreSQL, the newest `/usr/lib/postgresql/*/bin`).
//!
//! A missing binary is a [`KitError::MissingBinary`] that names it and says to
//! run `scripts/control-plane.sh install`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::KitError;

/// Where to look for one binary.
struct Search<'a> {
    /// File name of the binary.
    name: &'a str,
    /// Environment variable naming the binary itself.
    file_var: Option<&'a str>,
    /// Environment variable naming the directory that holds it.
    dir_var: Option<&'a str>,
    /// Whether the install script's cache directory may hold it.
    in_cache: bool,
}

/// The directory `scripts/control-plane.sh install` puts the Kubernetes binaries in.
pub fn cache_bin_dir() -> Option<PathBuf> {
    cache_bin_dir_with(&|k| std::env::var_os(k))
}

fn cache_bin_dir_with(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let root = match env("PREVIEW_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env("HOME")?).join(".cache/preview-envs"),
    };
    Some(root.join("control-plane/bin"))
}

/// `etcd` (v3.6, built by the install script from the `go.etcd.io/etcd` modules).
pub fn etcd() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "etcd",
        file_var: Some("PREVIEW_ETCD"),
        dir_var: None,
        in_cache: true,
    })
}

/// Where [`kube_apiserver`] looks.
const KUBE_APISERVER: Search<'static> = Search {
    name: "kube-apiserver",
    file_var: None,
    dir_var: Some("PREVIEW_KUBE_BIN_DIR"),
    in_cache: true,
};

/// `kube-apiserver` (v1.37, built by the install script from `k8s.io/kubernetes`).
pub fn kube_apiserver() -> Result<PathBuf, KitError> {
    locate(&KUBE_APISERVER)
}

/// `kube-controller-manager` (v1.37, built by the install script).
pub fn kube_controller_manager() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "kube-controller-manager",
        file_var: None,
        dir_var: Some("PREVIEW_KUBE_BIN_DIR"),
        in_cache: true,
    })
}

/// `kube-scheduler` (v1.37, built by the install script).
pub fn kube_scheduler() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "kube-scheduler",
        file_var: None,
        dir_var: Some("PREVIEW_KUBE_BIN_DIR"),
        in_cache: true,
    })
}

/// `kubectl` v1.37 (built by the install script; used as a baseline, never
/// needed by the kit itself).
pub fn kubectl() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "kubectl",
        file_var: Some("PREVIEW_KUBECTL"),
        dir_var: None,
        in_cache: true,
    })
}

/// `cert-manager-controller` (cert-manager v1.20, built by the install script
/// from the cert-manager Go modules; see [`crate::cert_manager`]).
pub fn cert_manager_controller() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "cert-manager-controller",
        file_var: Some("PREVIEW_CERT_MANAGER"),
        dir_var: Some("PREVIEW_KUBE_BIN_DIR"),
        in_cache: true,
    })
}

/// `openssl`, used to generate the service-account key pair.
pub fn openssl() -> Result<PathBuf, KitError> {
    locate(&Search {
        name: "openssl",
        file_var: None,
        dir_var: None,
        in_cache: false,
    })
}

/// The directory holding PostgreSQL's server binaries (`initdb`, `pg_ctl`, `postgres`).
pub fn pg_bin_dir() -> Result<PathBuf, KitError> {
    pg_bin_dir_with(&|k| std::env::var_os(k), Path::new("/usr/lib/postgresql"))
}

fn pg_bin_dir_with(
    env: &dyn Fn(&str) -> Option<OsString>,
    debian_root: &Path,
) -> Result<PathBuf, KitError> {
    let mut searched = Vec::new();
    if let Some(dir) = env("PREVIEW_PG_BIN_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if is_executable(&dir.join("initdb")) {
            return Ok(dir);
        }
        searched.push(format!("$PREVIEW_PG_BIN_DIR={}", dir.display()));
    }
    // Newest Debian cluster version first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions
        .into_iter()
        .rev()
        .find(|(_, d)| is_executable(&d.join("initdb")))
    {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", debian_root.display()));
    if let Some(found) = find_in_path("initdb", env)
        && let Some(dir) = found.parent()
    {
        return Ok(dir.to_path_buf());
    }
    searched.push("PATH".into());
    Err(KitError::MissingBinary {
        binary: "initdb (PostgreSQL server)".into(),
        searched: searched.join(", "),
    })
}

fn locate(search: &Search<'_>) -> Result<PathBuf, KitError> {
    locate_with(search, &|k| std::env::var_os(k))
}

fn locate_with(
    search: &Search<'_>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, KitError> {
    let mut searched = Vec::new();
    if let Some(var) = search.file_var
        && let Some(file) = env(var).filter(|f| !f.is_empty())
    {
        let file = PathBuf::from(file);
        if is_executable(&file) {
            return Ok(file);
        }
        searched.push(format!("${var}={}", file.display()));
    }
    if let Some(var) = search.dir_var
        && let Some(dir) = env(var).filter(|d| !d.is_empty())
    {
        let file = PathBuf::from(dir).join(search.name);
        if is_executable(&file) {
            return Ok(file);
        }
        searched.push(format!("${var}"));
    }
    if search.in_cache
        && let Some(dir) = cache_bin_dir_with(env)
    {
        let file = dir.join(search.name);
        if is_executable(&file) {
            return Ok(file);
        }
        searched.push(dir.display().to_string());
    }
    if let Some(file) = find_in_path(search.name, env) {
        return Ok(file);
    }
    searched.push("PATH".into());
    Err(KitError::MissingBinary {
        binary: search.name.to_string(),
        searched: searched.join(", "),
    })
}

fn find_in_path(name: &str, env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let path = env("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn missing_binary_names_it_and_the_install_script() {
        let env = env_of(&[("HOME", "/nonexistent-home"), ("PATH", "/nonexistent-bin")]);
        let err = locate_with(&KUBE_APISERVER, &env).expect_err("nothing to find");
        let msg = err.to_string();
        assert!(msg.contains("`kube-apiserver` not found"), "{msg}");
        assert!(msg.contains("scripts/control-plane.sh install"), "{msg}");
        assert!(
            msg.contains("/nonexistent-home/.cache/preview-envs/control-plane/bin"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn env_dir_wins_over_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("kube-apiserver");
        std::fs::write(&file, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dir_str = dir.path().to_str().expect("utf-8 temp path");
        let env = env_of(&[("PREVIEW_KUBE_BIN_DIR", dir_str), ("PATH", "/usr/bin")]);
        let found = locate_with(&KUBE_APISERVER, &env).expect("found");
        assert_eq!(found, file);
    }

    #[test]
    fn cache_dir_honours_preview_cache_dir() {
        let env = env_of(&[("PREVIEW_CACHE_DIR", "/c"), ("HOME", "/h")]);
        assert_eq!(
            cache_bin_dir_with(&env),
            Some(PathBuf::from("/c/control-plane/bin"))
        );
        let env = env_of(&[("HOME", "/h")]);
        assert_eq!(
            cache_bin_dir_with(&env),
            Some(PathBuf::from("/h/.cache/preview-envs/control-plane/bin"))
        );
    }

    #[test]
    fn missing_postgres_is_reported() {
        let empty = tempfile::tempdir().expect("tempdir");
        let env = env_of(&[("PATH", "/nonexistent-bin")]);
        let err = pg_bin_dir_with(&env, empty.path()).expect_err("nothing to find");
        assert!(err.to_string().contains("initdb"), "{err}");
    }
}
