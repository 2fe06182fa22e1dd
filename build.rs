//! Stamps the binary with the commit it was built from and the build date, for `--version` and
//! `ims_proxy_build_info`. Never fails the build: without git or a repository (the Docker build
//! copies no `.git`) the commit is `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let sha = git_sha(&manifest_dir).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=IMS_PROXY_GIT_SHA={sha}");
    println!("cargo:rustc-env=IMS_PROXY_BUILD_DATE={}", build_date());
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The short commit of HEAD, if this crate is the top of a git work tree (not a copy of it
/// inside some other repository). Rerun only when HEAD moves: HEAD itself (a checkout) and
/// the branch it points to (a commit), loose or packed.
fn git_sha(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let mut watched = vec![git(dir, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(dir, &["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(dir, &["rev-parse", "--git-path", "packed-refs"]));
    for path in watched {
        let path = dir.join(path);
        // A path that does not exist would make cargo rerun this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(dir, &["rev-parse", "--short", "HEAD"])
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else today, as YYYY-MM-DD in UTC.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => t.date().to_string(),
        Err(_) => "unknown".into(),
    }
}
