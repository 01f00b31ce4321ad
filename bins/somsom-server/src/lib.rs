//! SomSom's server as a library: [`build`] turns a [`Config`] into a ready [`Application`], and
//! [`app()`] turns state into the axum [`Router`](axum::Router). `main.rs` only reads config, sets
//! up logging, builds and serves; tests drive the router without a socket or bind port 0.

pub mod app;
pub mod auth;
pub mod backends;
pub mod chat;
pub mod client_ip;
pub mod config;
pub mod connections;
pub mod db;
pub mod error;
pub mod extract;
pub mod festivals;
pub mod generate;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod outage;
pub mod push;
pub mod queues;
pub mod rate;
pub mod readiness;
pub mod reservations;
pub mod tasks;
pub mod telemetry;
pub mod tickets;
pub mod web;
pub mod workflows;

mod application;

pub use app::{AppState, app, app_with};
pub use application::{Application, BuildError, Overrides, build, build_with, shutdown_signal};
pub use auth::build::local_identity;
pub use config::Config;
