//! Why the server could not be built, typed by what an operator has to fix.

use std::net::SocketAddr;

use crate::backends::BackendError;
use crate::config::Invalid;
use crate::db::DbError;

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration cannot work (found by [`Config::validate`](crate::config::Config::validate) before anything connects).
    #[error("invalid configuration: {0}")]
    Config(#[from] Invalid),
    /// A key or secret the configuration names could not be read or used.
    #[error("{name}: {reason}")]
    Secret {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An engine could not start: migrating its tables or loading its state failed.
    #[error("{engine} could not start")]
    Engine {
        /// Which.
        engine: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A configured backend could not be reached.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// The error and every cause under it, one line: what an operator reads when the server
    /// does not start.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

/// `BuildError::Engine` for `engine`, from whatever its backend said.
pub(crate) fn engine_failed<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    engine: &'static str,
) -> impl FnOnce(E) -> BuildError {
    move |e| BuildError::Engine {
        engine,
        source: e.into(),
    }
}

/// `BuildError::Secret` for the setting `name`.
pub(crate) fn secret_error(name: &'static str) -> impl FnOnce(String) -> BuildError {
    move |reason| BuildError::Secret { name, reason }
}
