//! `IMS_PROXY_*` environment variables laid over the TOML before it is deserialized.
//!
//! Figment's own `Env` provider turns `ROUTES__0__PREFIX` into a table with a key `"0"`, which
//! then cannot stand for the TOML's array of routes; so the overlay is done here, on figment's
//! value tree:
//!
//! - `__` separates levels, names are lowercased (`IMS_PROXY_SERVER__LISTEN` is
//!   `server.listen`);
//! - a number is an index into an array (`IMS_PROXY_ROUTES__0__PREFIX` is `routes[0].prefix`);
//!   the index one past the end appends an entry;
//! - a value is parsed like figment parses environment values (`true`, `30`, `["a", "b"]`,
//!   otherwise a string);
//! - setting one source of a secret replaces the file's other source of it: the variable
//!   `..._CLIENT_SECRET` drops the file's `client_secret_file`, and so on;
//! - an empty value of a `..._FILE` (or `..._DIR`) variable removes that key.

use super::error::ConfigError;
use crate::base::secret::PLACEHOLDER;
use figment::value::{Dict, Tag, Value};
use std::collections::BTreeSet;

pub const PREFIX: &str = "IMS_PROXY_";

/// Keys that are alternatives for one secret: setting one removes the others the file set.
const ALTERNATIVES: [&[&str]; 4] = [
    &["access_token", "access_token_file"],
    &["client_secret", "client_secret_file"],
    &["key", "key_file", "key_sha256"],
    &["password", "password_file"],
];

/// The top-level sections of proxy.toml.
const SECTIONS: [&str; 10] = [
    "server",
    "admin",
    "client",
    "credentials",
    "routes",
    "clients",
    "forward",
    "ims_endpoint",
    "tracing",
    "shared",
];

/// Kubernetes gives every pod `IMS_PROXY_PORT`, `IMS_PROXY_SERVICE_HOST` and the like when a
/// Service is named `ims-proxy`; Docker links do the same. They are not settings: a variable
/// whose name has no `__` and is not a top-level section is one of those, and is ignored.
/// Anything with `__` still goes through, so a misspelt section remains an error.
pub fn is_service_link(key: &str) -> bool {
    !key.contains("__") && !SECTIONS.iter().any(|s| key.eq_ignore_ascii_case(s))
}

/// Lays `vars` (name without the prefix, value) over `tree`, in name order.
pub fn overlay(tree: &mut Dict, vars: Vec<(String, String)>) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| !is_service_link(k))
        .collect();
    // Natural order, so that ROUTES__2 comes before ROUTES__10 (appending in turn).
    vars.sort_by_key(|(k, _)| sort_key(k));
    let mut set_by_env: BTreeSet<Vec<String>> = BTreeSet::new();
    for (name, raw) in vars {
        let var = format!("{PREFIX}{name}");
        let path: Vec<String> = name.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                var,
                "empty level in the name (\"__\" separates levels, once)",
            ));
        }
        let leaf = path.last().cloned().unwrap_or_default();
        let unset = raw.is_empty() && (leaf.ends_with("_file") || leaf.ends_with("_dir"));
        let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
        let parent = descend(tree, &path[..path.len() - 1], &var)?;
        if unset {
            parent.remove(&leaf);
            continue;
        }
        // The file's other sources of the same secret give way to the environment's.
        if let Some(group) = ALTERNATIVES.iter().find(|g| g.contains(&leaf.as_str())) {
            for other in group.iter().filter(|o| **o != leaf) {
                let mut p = path.clone();
                if let Some(last) = p.last_mut() {
                    *last = other.to_string();
                }
                if !set_by_env.contains(&p) {
                    parent.remove(*other);
                }
            }
        }
        parent.insert(leaf, value);
        set_by_env.insert(path);
    }
    Ok(())
}

fn sort_key(k: &str) -> Vec<(u64, String)> {
    k.split("__")
        .map(|s| match s.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, s.to_ascii_lowercase()),
        })
        .collect()
}

/// The table at `path`, made (tables, or arrays before an index) where missing.
fn descend<'a>(
    tree: &'a mut Dict,
    path: &[String],
    var: &str,
) -> Result<&'a mut Dict, ConfigError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(tree);
    };
    let next_is_index = rest.first().is_some_and(|s| is_index(s));
    let slot = tree
        .entry(first.clone())
        .or_insert_with(|| empty(next_is_index));
    descend_value(slot, rest, var, first)
}

fn descend_value<'a>(
    node: &'a mut Value,
    path: &[String],
    var: &str,
    here: &str,
) -> Result<&'a mut Dict, ConfigError> {
    let Some((first, rest)) = path.split_first() else {
        return match node {
            Value::Dict(_, d) => Ok(d),
            _ => Err(ConfigError::new(
                var,
                format!("{here} is a single value in the file, not a table"),
            )),
        };
    };
    let next_is_index = rest.first().is_some_and(|s| is_index(s));
    match node {
        Value::Dict(_, d) => {
            let slot = d
                .entry(first.clone())
                .or_insert_with(|| empty(next_is_index));
            descend_value(slot, rest, var, first)
        }
        Value::Array(_, items) => {
            let i: usize = first.parse().map_err(|_| {
                ConfigError::new(
                    var,
                    format!("{here} is an array: the next level must be an index (0, 1, ...), not {first:?}"),
                )
            })?;
            if i == items.len() {
                items.push(empty(next_is_index));
            }
            let len = items.len();
            let slot = items.get_mut(i).ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!(
                        "{here} has {} entries: the index may be at most {} (one past the end adds an entry)",
                        len,
                        len
                    ),
                )
            })?;
            descend_value(slot, rest, var, first)
        }
        _ => Err(ConfigError::new(
            var,
            format!("{here} is a single value in the file, not a table"),
        )),
    }
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn empty(array: bool) -> Value {
    if array {
        Value::Array(Tag::Default, Vec::new())
    } else {
        Value::Dict(Tag::Default, Dict::new())
    }
}

/// The first string still holding one of `proxy.toml.example`'s `REPLACE_WITH_...`
/// placeholders, as (key path parts, value).
pub fn find_placeholder(tree: &Dict) -> Option<(Vec<String>, String)> {
    fn walk(v: &Value, path: &mut Vec<String>) -> Option<(Vec<String>, String)> {
        match v {
            Value::String(_, s) if s.contains(PLACEHOLDER) => Some((path.clone(), s.clone())),
            Value::Dict(_, d) => d.iter().find_map(|(k, v)| {
                path.push(k.clone());
                let found = walk(v, path);
                path.pop();
                found
            }),
            Value::Array(_, items) => items.iter().enumerate().find_map(|(i, v)| {
                path.push(i.to_string());
                let found = walk(v, path);
                path.pop();
                found
            }),
            _ => None,
        }
    }
    tree.iter().find_map(|(k, v)| walk(v, &mut vec![k.clone()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(toml: &str) -> Dict {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(toml))
            .extract()
            .expect("toml")
    }

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn indices_reach_into_arrays_and_one_past_the_end_appends() {
        let mut t = tree("[[routes]]\nprefix = \"/a\"\n");
        overlay(
            &mut t,
            vars(&[("ROUTES__0__PREFIX", "/b"), ("ROUTES__1__PREFIX", "/c")]),
        )
        .unwrap();
        let routes = t["routes"].clone().into_array().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].find_ref("prefix").unwrap().as_str(), Some("/b"));
        assert_eq!(routes[1].find_ref("prefix").unwrap().as_str(), Some("/c"));
        let err = overlay(&mut t, vars(&[("ROUTES__5__PREFIX", "/d")])).unwrap_err();
        assert_eq!(err.key, "IMS_PROXY_ROUTES__5__PREFIX");
    }

    #[test]
    fn an_environment_secret_replaces_the_files_other_source() {
        let mut t = tree("[credentials.x]\nclient_secret_file = \"/s\"\n");
        overlay(&mut t, vars(&[("CREDENTIALS__X__CLIENT_SECRET", "v")])).unwrap();
        let x = t["credentials"].find_ref("x").unwrap();
        assert!(x.find_ref("client_secret_file").is_none());
        assert_eq!(x.find_ref("client_secret").unwrap().as_str(), Some("v"));
    }

    #[test]
    fn an_empty_file_variable_unsets_it() {
        let mut t = tree("[client]\nca_file = \"/x.pem\"\n");
        overlay(&mut t, vars(&[("CLIENT__CA_FILE", "")])).unwrap();
        assert!(t["client"].find_ref("ca_file").is_none());
    }
}
