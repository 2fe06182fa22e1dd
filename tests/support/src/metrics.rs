//! Reading the admin listener's Prometheus text.

use std::net::SocketAddr;

/// The body of `GET /metrics` on the admin listener at `admin`.
pub async fn metrics_text(admin: SocketAddr) -> String {
    let got = crate::client::get(&format!("http://{admin}/metrics")).await;
    String::from_utf8_lossy(&got.body).into_owned()
}

/// The value of the series `name` whose labels include all of `labels`, from Prometheus text.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if all {
            value.parse().ok()
        } else {
            None
        }
    })
}
