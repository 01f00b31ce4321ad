//! Serving a built [`Application`] until a graceful shutdown: the workers start here, never
//! for a one-off command.

use std::future::Future;
use std::time::Duration;

use axum::Router;

use super::Application;
use crate::app::app_with;
use crate::connections::{ConnectionLimits, GuardedListener, Peer};

impl Application {
    /// Serves until `signal` completes, then shuts down gracefully: stop accepting, let in-flight
    /// requests finish (up to the grace period), stop background tasks, close the database.
    pub async fn run_until<F>(self, signal: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Application {
            listener,
            metrics_listener,
            state,
            extra,
            tasks,
            grace,
            drain,
            session_poll,
        } = self;
        // Workers start with serving, never for a one-off command: delivery to this node's
        // chat sockets (subscribed before the first connection is accepted), then the rest.
        let pump = state
            .chat
            .server
            .start()
            .await
            .map_err(std::io::Error::other)?;
        tasks.spawn("chat-delivery", move |cancel| async move {
            tokio::select! {
                () = pump => {}
                () = cancel.cancelled() => {}
            }
        });
        tasks.start();
        let router = app_with(state.clone(), extra);
        let shutdown = state.shutdown.clone();
        let readiness = state.readiness.clone();
        let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            signal.await;
            if !drain.is_zero() {
                // Load balancers see the node unready and stop sending it new work while it
                // still answers what comes.
                readiness.drain();
                tracing::info!(
                    ?drain,
                    "shutdown: unready, still serving while traffic moves"
                );
                tokio::time::sleep(drain).await;
            }
            tracing::info!("shutdown: no new connections; draining in-flight requests");
            // Chat sockets are told to reconnect elsewhere; event streams likewise.
            shutdown.cancel();
            let _ = began_tx.send(());
        };
        // Sign-outs on any node reach this one's token checks and chat sockets within a poll.
        let (auth, users, chat) = (
            state.auth.clone(),
            state.users.clone(),
            state.chat.server.clone(),
        );
        tasks.spawn("session-follower", move |cancel| {
            crate::auth::sessions::follow(auth, users, chat, session_poll, cancel)
        });
        let (db, chat, clock) = (
            state.db.clone(),
            state.chat.server.clone(),
            state.festivals.clock.clone(),
        );
        tasks.spawn("chat-leave-follower", move |cancel| {
            crate::chat::follow_leaves(db, chat, clock, session_poll, cancel)
        });
        // Sold out closes a festival's waiting room; tickets coming back reopen it.
        let (tickets, queues) = (state.tickets.clone(), state.queues.clone());
        let readings = state.metrics.activity().queues.clone();
        tasks.spawn("sold-out-watcher", move |cancel| {
            crate::queues::sold_out::watch(
                tickets,
                queues,
                readings,
                Duration::from_secs(1),
                cancel,
            )
        });
        let limits = ConnectionLimits {
            max_connections: state.http.max_connections,
            header_read: Duration::from_secs(state.http.header_read_timeout_secs.max(1)),
            keep_alive_idle: Duration::from_secs(state.http.keep_alive_idle_secs.max(1)),
        };
        let listener = GuardedListener::new(listener, limits);
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<Peer>(),
        )
        .with_graceful_shutdown(signal);
        if let Some(metrics_listener) = metrics_listener {
            let metrics = Router::new()
                .route("/metrics", axum::routing::get(crate::metrics::metrics))
                .with_state(state.metrics.clone());
            tasks.spawn("metrics-listener", move |cancel| async move {
                let served = axum::serve(metrics_listener, metrics)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %crate::error::Report(&e), "metrics listener failed");
                }
            });
        }
        let deadline = async move {
            match began_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            result = server => result?,
            () = deadline => tracing::warn!(?grace, "shutdown: requests still running after the grace period; closing them"),
        }
        if !tasks.shutdown(grace).await {
            tracing::warn!(
                ?grace,
                "shutdown: background tasks still running after the grace period"
            );
        }
        state.queues.shutdown().await;
        state.db.close().await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %crate::error::Report(&e), "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %crate::error::Report(&e), "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
