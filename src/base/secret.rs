//! Secrets (client secrets, private keys, access tokens) live in [`Secret`], whose `Debug` and
//! `Display` never show the value: a secret that reaches a log line, an error or `check` output
//! prints as `[redacted]`.
//!
//! Files that hold secrets should be readable by their owner alone. One that group or others
//! can read still works (refusing would break deployments that mount secrets with 0644), but
//! it earns a warning naming the file and the config key, never the content.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read the value; grep for `expose` to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where `raw`'s authority is (between `scheme://`, or the start, and the first `/`, `?` or
/// `#`), as byte offsets. A backslash does not end it here, although browsers and the `url`
/// crate end the authority there: refusing too much is the safe side.
fn authority_span(raw: &str) -> (usize, usize) {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let len = raw[start..]
        .find(['/', '?', '#'])
        .unwrap_or(raw.len() - start);
    (start, start + len)
}

/// Why a URL with `user:password@` is refused (IMS, upstreams and public URLs take the IMS
/// token or the client secret, never a password in the URL; one there would be printed
/// wherever the URL is: `check`, logs, `/readyz`, error bodies). The egress proxy is the
/// exception: its credentials are a `Secret` and shown as `[redacted]`.
pub const USERINFO_REFUSED: &str =
    "a user name or password in the URL is not allowed (the URL is not shown, to keep it out of \
     logs): remove `user:password@`";

/// Whether a configured URL carries `user[:password]@` before its host.
pub fn has_userinfo(raw: &str) -> bool {
    let (start, end) = authority_span(raw);
    raw[start..end].contains('@')
}

/// What every placeholder the project ships starts with (`proxy.toml.example`, the deploy
/// examples' Secrets and secret files): a value holding it was never filled in.
pub const PLACEHOLDER: &str = "REPLACE_WITH_";

/// Reads a secret from a file, trimmed. The error names the file, never its content; a file
/// still holding a shipped placeholder is refused, so that an example's key or secret is never
/// taken for a real one.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    if text.contains(PLACEHOLDER) {
        return Err(format!(
            "{} still holds a {PLACEHOLDER}... placeholder from an example: put the real value \
             in (a client key: openssl rand -hex 32)",
            path.display()
        ));
    }
    Ok(Secret::new(text))
}

/// Warns when `path` is readable by group or others. Returns whether it warned.
pub fn warn_if_exposed(key: &str, path: &Path) -> bool {
    match exposed_mode(path) {
        Some(mode) => {
            tracing::warn!(
                key,
                file = %path.display(),
                mode = format!("{mode:04o}"),
                "secret file {} is readable by group or others (mode {mode:04o}); \
                 restrict it with chmod 600",
                path.display()
            );
            true
        }
        None => false,
    }
}

#[cfg(unix)]
fn exposed_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    // Follow symlinks: Kubernetes secret volumes are symlinks to the real files.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.permissions().mode() & 0o7777;
    // Group-readable is fine when the group is our own: Kubernetes mounts secrets 0440 with
    // the pod's fsGroup, which is the process's group, so only we can read them.
    // SAFETY: getegid has no preconditions and cannot fail.
    let own_group = meta.gid() == unsafe { libc::getegid() };
    let group_exposed = mode & 0o040 != 0 && !own_group;
    (mode & 0o004 != 0 || group_exposed).then_some(mode)
}

#[cfg(not(unix))]
fn exposed_mode(_path: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn userinfo_is_found_before_the_host_only() {
        for raw in [
            "http://u:pw@h:1/p",
            "https://u@h",
            "u:p@a@h/x",
            "http://u:p\\@h",
        ] {
            assert!(has_userinfo(raw), "{raw}");
        }
        for raw in ["http://h/a@b", "http://h?x=@", "http://h#@", "h:80", ""] {
            assert!(!has_userinfo(raw), "{raw}");
        }
    }
}

#[cfg(all(test, unix))]
mod file_mode_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_group_or_world_readable_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("ims-proxy-mode-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("secret");
        std::fs::write(&f, "x").unwrap_or_default();
        // The file belongs to our own group: group-readable is still private to us.
        for (mode, exposed) in [
            (0o600, false),
            (0o400, false),
            (0o640, false),
            (0o604, true),
        ] {
            let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode));
            assert_eq!(exposed_mode(&f).is_some(), exposed, "mode {mode:o}");
        }
        // Another group (only root can hand a file to one): group-readable is exposed.
        // SAFETY: getegid has no preconditions.
        let other = unsafe { libc::getegid() }.wrapping_add(1);
        if std::os::unix::fs::chown(&f, None, Some(other)).is_ok() {
            let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640));
            assert!(exposed_mode(&f).is_some(), "0640 for a foreign group");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
