//! The route table: longest prefix on whole path segments, and joining the rest of the path
//! onto the upstream's base path byte for byte (no decoding, no re-encoding), refusing only
//! dot-segments that would climb above that base.

use super::stats::RouteStats;
use crate::adobe::Api;
use crate::base::headers::reserved;
use crate::base::secret::{has_userinfo, USERINFO_REFUSED};
use crate::config::{normalise_prefix, ConfigError, RouteConfig};
use crate::fleet::CooldownKey;
use crate::token::Credential;
use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How a route is named in logs, metrics and errors: its prefix, or "/" for the catch-all.
pub fn label(prefix: &str) -> &str {
    if prefix.is_empty() {
        "/"
    } else {
        prefix
    }
}

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
        // First, and without the URL: the refusal must not print the password it refuses.
        if has_userinfo(url) {
            return Err(USERINFO_REFUSED.into());
        }
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
            return Err(USERINFO_REFUSED.into());
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
    /// The URLs clients know the API by (the forward listener matches on them): a preset's
    /// own (Audience Manager has two hosts), or `public_url`. Empty for routes without
    /// either, and with `intercept = false`.
    pub public: Vec<Upstream>,
    /// `false` when `intercept = false` keeps the route off the forward listener.
    pub intercept: bool,
    /// `check --online`'s authenticated read: `probe`, or the preset's.
    pub probe: Option<Probe>,
    pub credential: Arc<Credential>,
    pub send_org_id: bool,
    /// The preset's and the route's static headers, built once.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body limit in bytes; `None` is unlimited.
    pub max_body_size: Option<u64>,
    /// [`Route::label`], shared: what each request's context holds, with no copy.
    pub shared_label: Arc<str>,
    /// Its answers so far, for the status page; [`crate::state::Snapshot::build`] carries
    /// them over a reload.
    pub stats: Arc<RouteStats>,
    /// What an upstream 429 starts; `None` when the credential passes 429s through
    /// (`on_upstream_429 = "pass"`). Set by [`crate::state::Snapshot::build`].
    pub cool_down: Option<CoolDown>,
}

/// The cool-down of a route's credential and upstream host.
#[derive(Debug, Clone)]
pub struct CoolDown {
    pub key: CooldownKey,
    /// `cool_down_max`: the longest an upstream's `Retry-After` may make it.
    pub max: Duration,
}

/// With no `Retry-After` (or one that cannot be read), a 429 still cools down this long: long
/// enough to stop a stream of requests walking into the throttle, short enough to be harmless.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);
/// `cool_down_max` when the credential sets none.
pub const DEFAULT_COOL_DOWN_MAX: Duration = Duration::from_secs(60);

impl Route {
    /// Builds `routes[i]` from its config, with the credential it names.
    pub fn build(
        i: usize,
        rc: &RouteConfig,
        credentials: &BTreeMap<String, Arc<Credential>>,
        default_max_body: Option<u64>,
    ) -> Result<Route, ConfigError> {
        let key = format!("routes[{i}]");
        let prefix = normalise_prefix(&rc.prefix)
            .map_err(|r| ConfigError::new(format!("{key}.prefix"), r))?;
        let credential = credentials.get(&rc.credential).cloned().ok_or_else(|| {
            let known: Vec<&str> = credentials.keys().map(String::as_str).collect();
            ConfigError::new(
                format!("{key}.credential"),
                format!(
                    "unknown credential {:?} (known: {})",
                    rc.credential,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        let upstream_url = match (&rc.upstream, rc.api) {
            (Some(u), _) => u.clone(),
            (None, Some(api)) => api
                .default_upstream(rc.tenant.as_deref(), rc.stage)
                .map_err(|r| ConfigError::new(format!("{key}.tenant"), r))?,
            (None, None) => {
                return Err(ConfigError::new(
                    format!("{key}.upstream"),
                    "required when the route has no `api` preset",
                ))
            }
        };
        if rc.api != Some(Api::Campaign) && rc.tenant.is_some() {
            return Err(ConfigError::new(
                format!("{key}.tenant"),
                "only used with api = \"campaign\"",
            ));
        }
        let upstream = Upstream::parse(&upstream_url)
            .map_err(|r| ConfigError::new(format!("{key}.upstream"), r))?;
        let intercept = rc.intercept.unwrap_or(true);
        if !intercept && rc.public_url.is_some() {
            return Err(ConfigError::new(
                format!("{key}.public_url"),
                "unused: intercept = false keeps the route off the forward listener; remove one of them",
            ));
        }
        let public = match (&rc.public_url, rc.api) {
            _ if !intercept => Vec::new(),
            (Some(u), _) => vec![public_url(&format!("{key}.public_url"), u)?],
            // Underivable (Campaign without `tenant`) is left empty here; with `[forward]`
            // on, the snapshot refuses it, naming the key to set.
            (None, Some(api)) => api
                .public_urls(rc.tenant.as_deref(), rc.stage)
                .unwrap_or_default()
                .iter()
                .map(|u| public_url(&format!("{key}.api"), u))
                .collect::<Result<_, _>>()?,
            (None, None) => Vec::new(),
        };
        let probe = match (&rc.probe, rc.api) {
            (Some(p), _) => {
                Some(Probe::parse(p).map_err(|r| ConfigError::new(format!("{key}.probe"), r))?)
            }
            (None, Some(api)) => Some(Probe {
                method: Method::GET,
                path: api.probe().to_string(),
            }),
            (None, None) => None,
        };
        let send_org_id = match (rc.api, rc.org_id_header) {
            (_, Some(explicit)) => explicit,
            (Some(api), None) => api.sends_org_id(),
            (None, None) => false,
        };
        if send_org_id && credential.org_id.is_none() {
            return Err(ConfigError::new(
                format!("credentials.{}.org_id", rc.credential),
                format!("required: route {:?} sends x-gw-ims-org-id", rc.prefix),
            ));
        }
        Ok(Route {
            shared_label: label(&prefix).into(),
            prefix,
            api: rc.api,
            upstream,
            public,
            intercept,
            probe,
            credential,
            send_org_id,
            headers: static_headers(&key, rc)?,
            max_body_size: rc.max_body_size.map(|b| b.0).or(default_max_body),
            stats: Arc::default(),
            cool_down: None,
        })
    }

    pub fn label(&self) -> &str {
        label(&self.prefix)
    }

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

/// A side-effect-free request `check --online` sends through a route: `GET` or `HEAD` and a
/// path (with its query) relative to the route's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub method: Method,
    /// "/..." with its query, joined onto the upstream's base path.
    pub path: String,
}

impl Probe {
    pub fn parse(text: &str) -> Result<Probe, String> {
        let (method, path) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{text:?} is not \"GET /path\" (a method, a space, a path)"))?;
        let method = match method {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            other => {
                return Err(format!(
                    "{other:?}: only GET or HEAD, since a probe must change nothing at Adobe"
                ))
            }
        };
        let path = path.trim();
        if !path.starts_with('/')
            || path.contains(['#', ' ', '\t'])
            || path.parse::<http::uri::PathAndQuery>().is_err()
        {
            return Err(format!(
                "{path:?} is not a path starting with '/' (a query may follow)"
            ));
        }
        let (p, _) = path.split_once('?').unwrap_or((path, ""));
        if climbs_above_base(p) {
            return Err(format!("{path:?} climbs above the upstream's base path"));
        }
        Ok(Probe {
            method,
            path: path.to_string(),
        })
    }

    /// The path and query at the upstream, under `upstream`'s base path.
    pub fn upstream_path(&self, upstream: &Upstream) -> String {
        format!("{}{}", upstream.base_path, self.path)
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A public URL: HTTPS, as every Adobe API is, so the forward listener can intercept it.
fn public_url(key: &str, url: &str) -> Result<Upstream, ConfigError> {
    let parsed = Upstream::parse(url).map_err(|r| ConfigError::new(key, r))?;
    if parsed.scheme != Scheme::HTTPS {
        return Err(ConfigError::new(
            key,
            format!("{url:?} must be an https:// URL"),
        ));
    }
    Ok(parsed)
}

/// The preset's headers the route does not override, then the route's own.
fn static_headers(
    key: &str,
    rc: &RouteConfig,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    let preset = rc.api.map(|a| a.static_headers()).unwrap_or(&[]);
    for (name, value) in preset {
        if !rc.headers.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            headers.push((
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ));
        }
    }
    for (name, value) in &rc.headers {
        let hkey = format!("{key}.headers.{name}");
        let hname = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&hkey, "not a valid header name"))?;
        if reserved(&hname) {
            return Err(ConfigError::new(
                &hkey,
                "set by the proxy itself; a route cannot override it",
            ));
        }
        let hvalue = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(&hkey, "not a valid header value"))?;
        headers.push((hname, hvalue));
    }
    Ok(headers)
}

/// True when resolving the dot-segments of `rest` would leave the base path. Percent-encoded
/// dots and slashes and backslashes count as what they decode to, because some upstreams
/// decode or normalise them; empty segments count as nothing, because some merge slashes.
/// Beyond RFC 3986, what some upstreams also do counts: decoding twice (`%252e%252e`),
/// dropping path parameters (Tomcat's `..;x/`) and NFKC-folding fullwidth and other
/// look-alike dots and slashes (`%EF%BC%8E` is U+FF0E). Refusing a little too much is safe;
/// forwarding an escape is not. The common path (no `.`, `%` or non-ASCII byte) is one scan.
pub fn climbs_above_base(rest: &str) -> bool {
    if !rest
        .bytes()
        .any(|b| b == b'.' || b == b'%' || !b.is_ascii())
    {
        return false;
    }
    use std::borrow::Cow;
    let mut level: Cow<'_, [u8]> = Cow::Borrowed(rest.as_bytes());
    // Each level of decoding an upstream might apply, a few deep: `%25` is how a level hides.
    for _ in 0..4 {
        if climbs(&fold_look_alikes(&level)) {
            return true;
        }
        if !level.contains(&b'%') {
            return false;
        }
        let next: Cow<'_, [u8]> = percent_encoding::percent_decode(&level).into();
        if next == level {
            // A `%` that is not an escape (`50%/x`): decoding stops changing anything.
            return false;
        }
        level = Cow::Owned(next.into_owned());
    }
    // Still decoding after that many levels: nobody legitimate does this.
    true
}

/// Dot-segment resolution over `path`'s segments (split at `/` and `\`), each cut at its
/// first `;` as Tomcat does: whether it climbs above where it started.
fn climbs(path: &[u8]) -> bool {
    let mut depth: i64 = 0;
    for seg in path.split(|b| *b == b'/' || *b == b'\\') {
        let seg = seg.split(|b| *b == b';').next().unwrap_or(seg);
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

/// UTF-8 look-alikes that NFKC folds to `.`, `/` or `\`, replaced by them.
fn fold_look_alikes(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const FOLDS: [(&[u8], u8); 5] = [
        ("\u{FF0E}".as_bytes(), b'.'),  // FULLWIDTH FULL STOP
        ("\u{FE52}".as_bytes(), b'.'),  // SMALL FULL STOP
        ("\u{2024}".as_bytes(), b'.'),  // ONE DOT LEADER
        ("\u{FF0F}".as_bytes(), b'/'),  // FULLWIDTH SOLIDUS
        ("\u{FF3C}".as_bytes(), b'\\'), // FULLWIDTH REVERSE SOLIDUS
    ];
    if !b.iter().any(|c| *c == 0xEF || *c == 0xE2) {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    'outer: while i < b.len() {
        for (from, to) in FOLDS {
            if b[i..].starts_with(from) {
                out.push(to);
                i += from.len();
                continue 'outer;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
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

    /// The route whose public URL is the longest prefix of `host` + `path` (an intercepted
    /// request), and the rest of the path after that URL's base path.
    pub fn find_public<'a, 'p>(
        &'a self,
        host: &str,
        path: &'p str,
    ) -> Option<(&'a Route, &'p str)> {
        self.routes
            .iter()
            .filter_map(|r| {
                r.public.iter().find_map(|public| {
                    if !same_host(public.authority.as_str(), host) {
                        return None;
                    }
                    let rest = path.strip_prefix(public.base_path.as_str())?;
                    (rest.is_empty() || rest.starts_with('/')).then_some((
                        r,
                        rest,
                        public.base_path.len(),
                    ))
                })
            })
            .max_by_key(|(_, _, len)| *len)
            .map(|(r, rest, _)| (r, rest))
    }

    /// Whether some route's public URL is on `host`.
    pub fn serves_host(&self, host: &str) -> bool {
        self.routes
            .iter()
            .flat_map(|r| r.public.iter())
            .any(|p| same_host(p.authority.as_str(), host))
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

/// `mc.adobe.io` and `MC.adobe.io:443` are one host for HTTPS.
pub fn same_host(authority: &str, host: &str) -> bool {
    let strip = |a: &str| {
        let a = a.strip_suffix(":443").unwrap_or(a);
        a.to_ascii_lowercase()
    };
    strip(authority) == strip(host)
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
    fn dot_segments_an_upstream_might_see_after_extra_decoding_are_refused() {
        for p in [
            "/..;/x",
            "/..;jsessionid=1/x",
            "/%2e%2e;/x",
            "/%252e%252e/x",
            "/%25252e%25252e/x",
            "/a%252f..%252f..",
            "/%EF%BC%8E%EF%BC%8E/x",
            "/\u{FF0E}\u{FF0E}/x",
            "/%EF%B9%92%EF%B9%92/x",
            "/a%EF%BC%8F..%EF%BC%8F..",
        ] {
            assert!(climbs_above_base(p), "{p} must be refused");
        }
    }

    #[test]
    fn look_alikes_and_parameters_that_stay_inside_the_base_are_fine() {
        assert!(!climbs_above_base("/a;v=1/b"));
        assert!(!climbs_above_base("/a/%252e%252e/b"));
        assert!(!climbs_above_base("/caf%C3%A9/%EF%BC%8E"));
        assert!(!climbs_above_base("/50%25/x.json"));
        assert!(!climbs_above_base("/100%/done"));
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

    #[test]
    fn a_probe_is_a_get_or_head_of_a_path_inside_the_upstream() {
        let p = Probe::parse("GET /v1/things?limit=1").unwrap();
        assert_eq!(
            (p.method, p.path.as_str()),
            (Method::GET, "/v1/things?limit=1")
        );
        assert!(Probe::parse("HEAD /").is_ok());
        for bad in [
            "POST /jobs",
            "DELETE /x",
            "GET",
            "GET x",
            "GET /../admin",
            "get /x",
        ] {
            assert!(Probe::parse(bad).is_err(), "{bad}");
        }
    }
}
