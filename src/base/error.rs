//! The boxed error every body and connector speaks, and reading an error's cause chain.
//! Classifying an error by what caused it (linkerd's `cause_ref`) beats side-channel flags:
//! the error carries its own story.

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error and its causes on one line (`connect failed: connection refused`): the useful part
/// of a client or TLS error is usually a few sources down.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The first error of type `E` in `e`'s cause chain, `e` included.
pub fn cause_ref<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_chain_is_read_to_its_root() {
        let e = Outer(Inner);
        assert_eq!(error_chain(&e), "outer: inner");
        assert!(cause_ref::<Inner>(&e).is_some());
        assert!(cause_ref::<std::io::Error>(&e).is_none());
    }
}
