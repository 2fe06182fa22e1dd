//! The request body limit while the body streams, and how a caller's body failed. A body that
//! fails records why in its [`BodyFailure`] at the moment it fails, so the exchange can answer
//! with the caller's fault (413, 400) rather than blame the upstream.

use super::observed::Observer;
use super::paced::Stalled;
use crate::base::error::{error_chain, BoxError};
use bytes::Bytes;
use http_body::Frame;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A caller's body that could not be forwarded: always the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds this route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the request body did not start within {0:?}")]
    Timeout(Duration),
    #[error("the request body stalled: no bytes for {0:?}")]
    Stalled(Duration),
    /// Unreadable as framed (a broken chunk, a short body, the connection lost).
    #[error("request body: {0}")]
    Broken(String),
}

/// Where a body records its failure; the first one wins.
#[derive(Debug, Clone, Default)]
pub struct BodyFailure(Arc<OnceLock<BodyError>>);

impl BodyFailure {
    pub fn record(&self, e: BodyError) {
        let _ = self.0.set(e);
    }

    pub fn get(&self) -> Option<BodyError> {
        self.0.get().cloned()
    }
}

/// Fails the body once more than `limit` bytes have passed.
pub struct Limit {
    limit: u64,
    seen: u64,
    failure: BodyFailure,
}

impl Limit {
    pub fn new(limit: Option<u64>, failure: BodyFailure) -> Self {
        Limit {
            limit: limit.unwrap_or(u64::MAX),
            seen: 0,
            failure,
        }
    }
}

impl Observer for Limit {
    #[inline]
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        if let Some(data) = frame.data_ref() {
            self.seen = self.seen.saturating_add(data.len() as u64);
            if self.seen > self.limit {
                let e = BodyError::TooLarge { limit: self.limit };
                self.failure.record(e.clone());
                return Err(Box::new(e));
            }
        }
        Ok(())
    }

    fn on_error(&mut self, error: &BoxError) {
        let e = match error.downcast_ref::<Stalled>() {
            Some(s) => BodyError::Stalled(s.0),
            None => BodyError::Broken(error_chain(error.as_ref())),
        };
        self.failure.record(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::observed::Observed;
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn a_body_over_the_limit_fails_and_records_that_it_was_too_large() {
        let failure = BodyFailure::default();
        let body = Observed::new(
            Full::new(Bytes::from_static(b"0123456789")),
            Limit::new(Some(4), failure.clone()),
        );
        assert!(body.collect().await.is_err());
        assert_eq!(failure.get(), Some(BodyError::TooLarge { limit: 4 }));
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_whole() {
        let failure = BodyFailure::default();
        let body = Observed::new(
            Full::new(Bytes::from_static(b"0123")),
            Limit::new(Some(4), failure.clone()),
        );
        let got = body.collect().await.map(|b| b.to_bytes()).ok();
        assert_eq!(got, Some(Bytes::from_static(b"0123")));
        assert_eq!(failure.get(), None);
    }
}
