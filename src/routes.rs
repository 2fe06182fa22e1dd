//! The route table: longest prefix on whole path segments, and joining the rest of the path
//! onto the upstream's base path byte for byte (no decoding, no re-encoding), refusing only
//! dot-segments that would climb above that base.

use crate::adobe::Api;
use crate::token::Credential;
use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// Where a route sends requests: `scheme://authority` plus a base path without trailing slash.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// "" or "/a/b".
    pub base_path: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let scheme = match parsed.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            other => return Err(format!("scheme {other:?} is not http or https")),
        };
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("{url:?} has no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("credentials in the URL are not allowed".into());
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("a query or fragment is not allowed in an upstream URL".into());
        }
        // Take the authority from the original text so an explicit default port survives.
        let after_scheme = &url[parsed.scheme().len() + 3..];
        let auth_end = after_scheme.find('/').unwrap_or(after_scheme.len());
        let authority: Authority = after_scheme[..auth_end]
            .parse()
            .map_err(|e| format!("bad host in {url:?}: {e}"))?;
        let base_path = parsed.path().trim_end_matches('/').to_string();
        Ok(Upstream {
            scheme,
            authority,
            base_path,
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

#[derive(Debug)]
pub struct Route {
    /// "/campaign"; "" for a catch-all "/" route.
    pub prefix: String,
    pub api: Option<Api>,
    pub upstream: Upstream,
    pub credential: Arc<Credential>,
    pub send_org_id: bool,
    /// The preset's and the route's static headers, built once.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body limit in bytes; `None` is unlimited.
    pub max_body_size: Option<u64>,
}

impl Route {
    /// The upstream path-and-query for `rest` (what followed the prefix, "" or "/...").
    /// `None` when a dot-segment would climb above the base path.
    pub fn upstream_path_and_query(&self, rest: &str, query: Option<&str>) -> Option<String> {
        if climbs_above_base(rest) {
            return None;
        }
        let mut out = String::with_capacity(
            self.upstream.base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1,
        );
        out.push_str(&self.upstream.base_path);
        out.push_str(rest);
        if out.is_empty() {
            out.push('/');
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }
}

/// True when resolving the dot-segments of `rest` would leave the base path. Percent-encoded
/// dots and slashes and backslashes count as what they decode to, because some upstreams
/// decode or normalise them; empty segments count as nothing, because some merge slashes.
/// Refusing a little too much is safe; forwarding an escape is not.
pub fn climbs_above_base(rest: &str) -> bool {
    if !rest.contains('.') && !rest.contains('%') {
        return false;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
    let mut depth: i64 = 0;
    for seg in decoded.split(|b| *b == b'/' || *b == b'\\') {
        match seg {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first, so the first match is the longest.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable { routes }
    }

    /// The route for `path` and the rest of the path after its prefix.
    pub fn find<'a, 'p>(&'a self, path: &'p str) -> Option<(&'a Route, &'p str)> {
        self.routes.iter().find_map(|r| {
            let rest = path.strip_prefix(r.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((r, rest))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_inside_the_base_are_fine() {
        assert!(!climbs_above_base("/a/../b"));
        assert!(!climbs_above_base("/a/./b/.."));
        assert!(!climbs_above_base("/v1/x.json"));
    }

    #[test]
    fn dot_segments_above_the_base_are_refused_in_any_spelling() {
        for p in [
            "/..",
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e",
            "/.%2e/x",
            "/a%2f..%2f..",
            "/a\\..\\..",
            "//../x",
        ] {
            assert!(climbs_above_base(p), "{p} must be refused");
        }
    }

    #[test]
    fn upstream_urls_keep_their_base_path_without_trailing_slash() {
        let u = Upstream::parse("https://mc.adobe.io/acme/campaign/").unwrap();
        assert_eq!(u.base_path, "/acme/campaign");
        assert_eq!(u.authority.as_str(), "mc.adobe.io");
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("https://u:p@x").is_err());
        assert!(Upstream::parse("not a url").is_err());
    }
}
