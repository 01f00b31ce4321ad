//! The server's integration tests, in one binary (one link instead of one per file): each module
//! is a theme, `common` their shared helpers, `hostile` the suite of defences against hostile
//! clients. Run one theme with `cargo nextest run -p somsom-server --test server -E 'test(/^chat::/)'`.

mod common;

mod api_fuzz;
mod auth;
mod aws_outage;
mod binary;
mod chat;
mod chat_multi_node;
mod e2e;
mod festivals;
mod gate;
mod hostile;
mod kafka_outage;
mod mail;
mod multi_node;
mod openapi;
mod operator;
mod outage;
mod push;
mod push_crash;
mod queues;
mod reservations;
mod restarts;
mod rolling_restart;
mod router;
mod services;
mod stomp_clients;
mod web_e2e;
