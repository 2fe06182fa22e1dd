//! Request and response bodies as the proxy wraps them. One wrapper, [`Observed`], does every
//! job that needs to see frames go by or hold something until a body ends (the access log, byte
//! counts, the body limit, the copy kept for a 401 replay, a connection's in-flight mark); each
//! job is an [`Observer`]. [`Primed`] gives back a first frame read ahead of time.

mod inbound;
mod limited;
mod observed;
mod paced;
mod primed;
mod replay;

pub use inbound::{Fed, FedError, Feeder, Inbound};
pub use limited::{BodyError, BodyFailure, Limit};
pub use observed::{ByteCount, Observed, Observer};
pub use paced::{Paced, Progress};
pub use primed::{first_frame, Primed};
pub use replay::{keep, KeptBody};
