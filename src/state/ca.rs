//! The forward listener's local CA: generated on first start into `[forward] ca_dir` (the key
//! readable by the proxy alone), and the leaf certificates it issues, one per intercepted host,
//! short-lived and cached. Clients trust it explicitly (`NODE_EXTRA_CA_CERTS`,
//! `REQUESTS_CA_BUNDLE`, ...); nothing else does, so a leaf is worthless outside this proxy.
//!
//! What trusting it costs is bounded: the CA carries name constraints (critical) for Adobe's
//! domains and the other hosts the configuration intercepts, and excludes every IP address it
//! was not made for, so a leaked `ca.key` cannot impersonate any other site to a client that
//! honours them (rustls, OpenSSL, Node do); and it lives a year. `ims-proxy ca rotate` makes a
//! new one; one that expired is replaced at start, with a warning.

use crate::base::secret::warn_if_exposed;
use crate::config::ConfigError;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Leaves live a day and are reissued an hour before that.
const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const LEAF_RENEW: Duration = Duration::from_secs(23 * 3600);
const CA_NAME: &str = "ims-proxy local CA";
/// A year: clients are told to trust it, so its life bounds what a leaked key is worth, and a
/// yearly `ims-proxy ca rotate` is an operator's routine.
const CA_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// `check`, start and reload warn this long before the CA expires.
const CA_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Every host of Adobe's the forward listener may intercept is under one of these (the APIs on
/// adobe.io, IMS on adobelogin.com, Audience Manager's api.demdex.com): a CA constrained to
/// them needs no new one when a route for another of Adobe's APIs is added.
pub const ADOBE_DOMAINS: [&str; 3] = ["adobe.io", "adobelogin.com", "demdex.com"];

/// A host the forward listener may terminate TLS for, and why (for the error when the CA
/// cannot vouch for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intercepted {
    pub host: String,
    pub origin: String,
}

pub struct LocalCa {
    cert_path: PathBuf,
    cert_pem: String,
    /// The CA as rcgen signs with it; rebuilt from the stored key and the fixed name, which is
    /// what a leaf's issuer and authority key identifier are made of.
    issuer: rcgen::Certificate,
    key: KeyPair,
    ca_der: CertificateDer<'static>,
    /// What the certificate on disk says.
    facts: CaFacts,
    /// Verifies a leaf as a client trusting this CA alone would (name constraints, validity).
    verifier: Arc<WebPkiServerVerifier>,
    leaves: Mutex<HashMap<String, (Arc<CertifiedKey>, Instant)>>,
}

/// What is read back from the CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFacts {
    pub not_after: SystemTime,
    /// The DNS names and IP ranges its name constraints permit; `None` when it has none (a CA
    /// made before they were added), and so could vouch for any host.
    pub permitted: Option<Vec<String>>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("cert", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA from `dir`, generating it (constrained to Adobe's domains and
    /// `intercepted`) when `dir` holds none or the one there has expired; then checks that it
    /// can vouch for every host in `intercepted`.
    pub fn load_or_create(dir: &Path, intercepted: &[Intercepted]) -> Result<LocalCa, ConfigError> {
        let key_path = dir.join("ca.key");
        let ca = if key_path.exists() {
            let ca = Self::load(dir)?;
            if ca.facts.not_after <= SystemTime::now() {
                tracing::warn!(
                    ca = %ca.cert_path.display(),
                    "the local CA expired on {}; made a new one: clients must trust the new \
                     certificate",
                    date(ca.facts.not_after)
                );
                remove_pair(dir)?;
                Self::create(dir, intercepted)?
            } else {
                ca
            }
        } else {
            Self::create(dir, intercepted)?
        };
        ca.check_covers(intercepted)?;
        for w in ca.warnings() {
            tracing::warn!(ca = %ca.cert_path.display(), "{w}");
        }
        Ok(ca)
    }

    /// Whether the CA certificate on disk is still the one this was loaded from (a rotation
    /// replaces it; a reload then loads the new one).
    pub fn is_current(&self, dir: &Path) -> bool {
        self.cert_path == dir.join("ca.pem")
            && std::fs::read_to_string(&self.cert_path).is_ok_and(|pem| pem == self.cert_pem)
    }

    fn create(dir: &Path, intercepted: &[Intercepted]) -> Result<LocalCa, ConfigError> {
        let err = |r: String| ConfigError::new("forward.ca_dir", r);
        let key = KeyPair::generate().map_err(|e| err(format!("cannot make a key: {e}")))?;
        let cert = ca_params(intercepted)
            .self_signed(&key)
            .map_err(|e| err(format!("cannot make the CA certificate: {e}")))?;
        create_private_dir(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let key_path = dir.join("ca.key");
        write_private(&key_path, &key.serialize_pem())
            .map_err(|e| err(format!("cannot write {}: {e}", key_path.display())))?;
        let cert_path = dir.join("ca.pem");
        std::fs::write(&cert_path, cert.pem())
            .map_err(|e| err(format!("cannot write {}: {e}", cert_path.display())))?;
        Self::load(dir)
    }

    fn load(dir: &Path) -> Result<LocalCa, ConfigError> {
        let err = |r: String| ConfigError::new("forward.ca_dir", r);
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        // The directory too: a CA key others can list and replace is a CA others control.
        warn_if_exposed("forward.ca_dir", dir);
        warn_if_exposed("forward.ca_dir", &key_path);
        let pem = std::fs::read_to_string(&key_path)
            .map_err(|e| err(format!("cannot read {}: {e}", key_path.display())))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| {
            err(format!(
                "{} is not a PEM private key: {e}",
                key_path.display()
            ))
        })?;
        // The issuer as rcgen signs with it: a leaf takes its name and key identifier.
        let issuer = issuer_params()
            .self_signed(&key)
            .map_err(|e| err(format!("cannot make the CA certificate: {e}")))?;
        let cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            // The certificate lost and the key kept: made again from the key, for a year.
            Err(_) => {
                let mut params = issuer_params();
                params.name_constraints = Some(constraints(&[]));
                let pem = params
                    .self_signed(&key)
                    .map_err(|e| err(format!("cannot make the CA certificate: {e}")))?
                    .pem();
                std::fs::write(&cert_path, &pem)
                    .map_err(|e| err(format!("cannot write {}: {e}", cert_path.display())))?;
                pem
            }
        };
        let ca_der = crate::base::pem::read_certs(&cert_path)
            .map_err(err)?
            .into_iter()
            .next()
            .ok_or_else(|| err(format!("{} holds no certificate", cert_path.display())))?;
        let facts = read_facts(&ca_der).map_err(|e| {
            err(format!(
                "{} is not a CA certificate this proxy can read: {e}",
                cert_path.display()
            ))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca_der.clone())
            .map_err(|e| err(format!("{}: {e}", cert_path.display())))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| err(format!("{}: {e}", cert_path.display())))?;
        Ok(LocalCa {
            cert_path,
            cert_pem,
            issuer,
            key,
            ca_der,
            facts,
            verifier,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// Refuses a configuration that intercepts a host the CA's name constraints leave out:
    /// every client would reject its leaf, so the forward listener would look broken.
    pub fn check_covers(&self, intercepted: &[Intercepted]) -> Result<(), ConfigError> {
        for i in intercepted {
            if let Err(why) = self.vouches_for(&i.host) {
                let names = match &self.facts.permitted {
                    Some(p) => p.join(", "),
                    None => "any host".into(),
                };
                return Err(ConfigError::new(
                    "forward.ca_dir",
                    format!(
                        "the local CA {} cannot vouch for {} ({}): {why}; it was made for {names}. \
                         Make one that covers it with `ims-proxy ca rotate`, then give clients \
                         the new certificate",
                        self.cert_path.display(),
                        i.host,
                        i.origin
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Issues (or takes from the cache) the leaf for `host` and verifies it as a client
    /// trusting this CA alone would.
    fn vouches_for(&self, host: &str) -> Result<(), String> {
        let leaf = self.leaf(host)?;
        let name = ServerName::try_from(host.to_ascii_lowercase()).map_err(|e| e.to_string())?;
        let cert = leaf.cert.first().ok_or("no certificate")?;
        self.verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    pub fn facts(&self) -> &CaFacts {
        &self.facts
    }

    /// What an operator should act on: a CA without name constraints, or one about to expire.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.facts.permitted.is_none() {
            out.push(
                "the local CA has no name constraints (it was made by an earlier version): \
                 whoever holds its key could impersonate any HTTPS site to the clients that \
                 trust it; replace it with `ims-proxy ca rotate`"
                    .to_string(),
            );
        }
        if self.facts.not_after < SystemTime::now() + CA_EXPIRY_WARNING {
            out.push(format!(
                "the local CA expires on {}: replace it with `ims-proxy ca rotate` and give \
                 clients the new certificate",
                date(self.facts.not_after)
            ));
        }
        out
    }

    /// Writes `bundle.pem` beside `ca.pem`: the machine's trusted roots, then this CA, one PEM
    /// for the clients whose setting replaces their roots rather than adding to them
    /// (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `CURL_CA_BUNDLE`), so that their other HTTPS
    /// hosts keep working. Rewritten whole on each call (a rotated CA replaces the old one).
    pub fn write_bundle(&self) -> Result<Bundle, ConfigError> {
        let err = |r: String| ConfigError::new("forward.ca_dir", r);
        let path = self.cert_path.with_file_name("bundle.pem");
        let (source, roots) = system_roots(&path).map_err(err)?;
        let count = roots.len();
        let mut text = format!(
            "# ims-proxy ca bundle: the {count} roots of {}, then the proxy's local CA\n",
            source.display()
        );
        for der in roots {
            text.push_str(&pem_block(&der));
        }
        text.push_str(&pem_block(&self.ca_der));
        let tmp = self.cert_path.with_file_name("bundle.pem.new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        Ok(Bundle {
            path,
            source,
            roots: count,
        })
    }

    /// One line for `check`: where, until when, for which names.
    pub fn describe(&self) -> String {
        format!(
            "{}, valid until {}, for {}",
            self.cert_path.display(),
            date(self.facts.not_after),
            match &self.facts.permitted {
                Some(p) => p.join(", "),
                None => "any host (no name constraints)".into(),
            }
        )
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate (and key) to present for `host`, issued on first use.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, String> {
        let host = host.to_ascii_lowercase();
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((leaf, issued)) = leaves.get(&host) {
            if issued.elapsed() < LEAF_RENEW {
                return Ok(leaf.clone());
            }
        }
        let leaf = Arc::new(self.issue(&host)?);
        leaves.insert(host, (leaf.clone(), Instant::now()));
        Ok(leaf)
    }

    fn issue(&self, host: &str) -> Result<CertifiedKey, String> {
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| format!("{host}: {e}"))?;
        let mut dn = DistinguishedName::new();
        // OpenSSL checks a common name that reads like a host name against the CA's DNS name
        // constraints when the certificate names no DNS host: an address's leaf gets one that
        // does not read so (its SAN carries the address).
        let cn = if host.parse::<IpAddr>().is_ok() {
            "ims-proxy leaf"
        } else {
            host
        };
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_LIFETIME;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(|e| e.to_string())?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing =
            rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.ca_der.clone()],
            signing,
        ))
    }
}

/// What `ims-proxy ca bundle` wrote.
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    /// Where the roots came from.
    pub source: PathBuf,
    pub roots: usize,
}

/// Where distributions keep their trusted roots as one PEM file: Debian and Ubuntu (and the
/// distroless images built on them), Fedora and RHEL, Alpine, openSUSE.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The machine's roots: the file `SSL_CERT_FILE` names, else the first of [`SYSTEM_BUNDLES`].
/// Theirs rather than the roots compiled into the proxy, because they hold what the
/// organisation added (an internal CA, a TLS-inspecting gateway's) that the app's other hosts
/// may need. `ours` (the bundle itself, which `SSL_CERT_FILE` may already name) is skipped.
fn system_roots(ours: &Path) -> Result<(PathBuf, Vec<CertificateDer<'static>>), String> {
    let from_env = std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let ours = std::fs::canonicalize(ours).unwrap_or_else(|_| ours.to_path_buf());
    let candidates = from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .filter(|p| !std::fs::canonicalize(p).is_ok_and(|c| c == ours));
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        let certs = crate::base::pem::read_certs(&path)?;
        if !certs.is_empty() {
            return Ok((path, certs));
        }
    }
    Err(format!(
        "no trusted roots to bundle: SSL_CERT_FILE is unset and none of {} exists; install the \
         ca-certificates package, or set SSL_CERT_FILE to a PEM file of roots",
        SYSTEM_BUNDLES.join(", ")
    ))
}

fn pem_block(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The CA's name and role, as a leaf's issuer needs them.
fn issuer_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + CA_LIFETIME;
    params
}

/// A new CA's certificate: [`issuer_params`] with name constraints for `intercepted`.
fn ca_params(intercepted: &[Intercepted]) -> CertificateParams {
    let mut params = issuer_params();
    params.name_constraints = Some(constraints(intercepted));
    params
}

/// Adobe's domains and every intercepted host not under one of them are permitted; IP
/// addresses only where a host is one (none otherwise: without an IP subtree, IP names would
/// be unconstrained).
fn constraints(intercepted: &[Intercepted]) -> NameConstraints {
    let mut dns: Vec<String> = ADOBE_DOMAINS.map(String::from).to_vec();
    let mut ips: Vec<IpAddr> = Vec::new();
    for i in intercepted {
        let host = i.host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => {
                let host = host.to_ascii_lowercase();
                if !dns.iter().any(|d| within(&host, d)) {
                    dns.push(host);
                }
            }
        }
    }
    let mut permitted: Vec<GeneralSubtree> = dns.into_iter().map(GeneralSubtree::DnsName).collect();
    let mut excluded = Vec::new();
    if ips.is_empty() {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])));
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])));
    }
    for ip in ips {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            ip, bits,
        )));
    }
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

/// `host` is `domain` or a subdomain of it (as a DNS name constraint reads).
fn within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.'))
}

fn date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map_or_else(|_| "?".into(), |t| t.date().to_string())
}

/// Deletes `ca.key` and `ca.pem` from `dir` (either may be missing).
fn remove_pair(dir: &Path) -> Result<(), ConfigError> {
    for name in ["ca.key", "ca.pem"] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError::new(
                    "forward.ca_dir",
                    format!("cannot remove {}: {e}", path.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Reads the expiry and the permitted name constraints back from a CA certificate (DER):
/// `Certificate { tbsCertificate { [0] version, serial, signature, issuer, validity, subject,
/// spki, ..., [3] extensions } }` (RFC 5280).
fn read_facts(cert: &[u8]) -> der::Result<CaFacts> {
    use der::asn1::{AnyRef, GeneralizedTime, UtcTime};
    use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
    fn children(any: AnyRef<'_>) -> der::Result<Vec<AnyRef<'_>>> {
        let mut r = SliceReader::new(any.value())?;
        let mut out = Vec::new();
        while !r.is_finished() {
            out.push(r.decode::<AnyRef<'_>>()?);
        }
        Ok(out)
    }
    let explicit = |n| Tag::ContextSpecific {
        constructed: true,
        number: n,
    };
    let missing = || der::Error::from(der::ErrorKind::Failed);
    let top = AnyRef::from_der(cert)?;
    let tbs = *children(top)?.first().ok_or_else(missing)?;
    let fields = children(tbs)?;
    let skip = usize::from(fields.first().map(|f| f.tag()) == Some(explicit(TagNumber::N0)));
    let validity = children(*fields.get(skip + 3).ok_or_else(missing)?)?;
    let not_after = *validity.get(1).ok_or_else(missing)?;
    let not_after = match not_after.tag() {
        Tag::UtcTime => not_after.decode_as::<UtcTime>()?.to_system_time(),
        _ => not_after.decode_as::<GeneralizedTime>()?.to_system_time(),
    };
    let mut permitted = None;
    if let Some(wrapper) = fields.iter().find(|f| f.tag() == explicit(TagNumber::N3)) {
        let list = *children(*wrapper)?.first().ok_or_else(missing)?;
        for ext in children(list)? {
            let parts = children(ext)?;
            let (Some(oid), Some(value)) = (parts.first(), parts.last()) else {
                continue;
            };
            // id-ce-nameConstraints, 2.5.29.30.
            if oid.tag() != Tag::ObjectIdentifier || oid.value() != [0x55, 0x1d, 0x1e] {
                continue;
            }
            let mut names = Vec::new();
            let nc = AnyRef::from_der(value.value())?;
            for subtrees in children(nc)? {
                if subtrees.tag() != explicit(TagNumber::N0) {
                    continue;
                }
                for subtree in children(subtrees)? {
                    let base = *children(subtree)?.first().ok_or_else(missing)?;
                    names.push(general_name(base));
                }
            }
            permitted = Some(names);
        }
    }
    Ok(CaFacts {
        not_after,
        permitted,
    })
}

/// A name constraint's base as `check` shows it: a DNS name, or an IP range `addr/bits`.
fn general_name(base: der::asn1::AnyRef<'_>) -> String {
    use der::Tagged;
    let v = base.value();
    match (base.tag().number().value(), v.len()) {
        (2, _) => String::from_utf8_lossy(v).into_owned(),
        (7, 8) | (7, 32) => {
            let (addr, mask) = v.split_at(v.len() / 2);
            let bits: u32 = mask.iter().map(|b| b.count_ones()).sum();
            let ip = match <[u8; 4]>::try_from(addr) {
                Ok(a) => IpAddr::from(a),
                Err(_) => <[u8; 16]>::try_from(addr).map_or(IpAddr::from([0u8; 4]), IpAddr::from),
            };
            format!("{ip}/{bits}")
        }
        _ => format!("(a name of type {})", base.tag()),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> Intercepted {
        Intercepted {
            host: h.into(),
            origin: "a test".into(),
        }
    }

    #[test]
    fn a_new_ca_is_constrained_to_adobes_domains_and_the_intercepted_hosts_for_a_year() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = [
            host("mc.adobe.io"),
            host("api.example.com"),
            host("127.0.0.1"),
        ];
        let ca = LocalCa::load_or_create(&dir.path().join("ca"), &hosts).expect("ca");
        assert_eq!(
            ca.facts().permitted.as_deref(),
            Some(
                &[
                    "adobe.io",
                    "adobelogin.com",
                    "demdex.com",
                    "api.example.com",
                    "127.0.0.1/32"
                ]
                .map(String::from)[..]
            )
        );
        let left = ca
            .facts()
            .not_after
            .duration_since(SystemTime::now())
            .expect("in the future");
        assert!(left > CA_LIFETIME - Duration::from_secs(3600) && left <= CA_LIFETIME);
        assert!(ca.warnings().is_empty(), "{:?}", ca.warnings());
        for ok in [
            "mc.adobe.io",
            "x.aam.adobe.io",
            "api.example.com",
            "127.0.0.1",
        ] {
            assert_eq!(ca.vouches_for(ok), Ok(()), "{ok}");
        }
        for refused in [
            "example.com",
            "www.example.com",
            "adobe.io.evil.com",
            "10.0.0.1",
        ] {
            assert!(ca.vouches_for(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn without_an_ip_host_every_ip_address_is_excluded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = LocalCa::load_or_create(dir.path(), &[host("mc.adobe.io")]).expect("ca");
        assert!(ca.vouches_for("127.0.0.1").is_err());
        assert!(ca.vouches_for("::1").is_err());
        assert_eq!(ca.vouches_for("platform.adobe.io"), Ok(()));
    }

    #[test]
    fn a_ca_that_cannot_vouch_for_a_later_host_is_refused_naming_the_way_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        LocalCa::load_or_create(dir.path(), &[host("mc.adobe.io")]).expect("ca");
        let err = LocalCa::load_or_create(dir.path(), &[host("api.example.com")]).unwrap_err();
        assert_eq!(err.key, "forward.ca_dir");
        assert!(err.reason.contains("api.example.com"), "{}", err.reason);
        assert!(err.reason.contains("ims-proxy ca rotate"), "{}", err.reason);
    }

    #[test]
    fn a_ca_within_30_days_of_expiry_is_kept_with_a_warning_naming_the_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let mut params = ca_params(&[]);
        let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(10);
        params.not_after = expiry;
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).expect("key");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("pem");
        let ca = LocalCa::load_or_create(dir.path(), &[host("mc.adobe.io")]).expect("ca");
        assert_eq!(ca.cert_pem(), cert.pem());
        let warnings = ca.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&format!("expires on {}", expiry.date())),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("ims-proxy ca rotate"), "{warnings:?}");
    }

    #[test]
    fn a_ca_without_name_constraints_is_read_as_such_and_warned_about() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let cert = issuer_params().self_signed(&key).expect("cert");
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).expect("key");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("pem");
        let ca = LocalCa::load_or_create(dir.path(), &[host("api.example.com")]).expect("ca");
        assert_eq!(ca.facts().permitted, None);
        assert!(ca.warnings()[0].contains("no name constraints"));
        assert_eq!(ca.vouches_for("example.com"), Ok(()));
    }
}
