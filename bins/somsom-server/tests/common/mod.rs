//! Shared helpers for the server's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use somsom_server::{Application, Config};

/// A configuration for tests: loopback port 0 and a SQLite file in `dir`.
pub fn config_in(dir: &std::path::Path) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!("sqlite://{}/data/somsom.db", dir.display()),
        shutdown_grace_secs: 10,
        ..Config::default()
    }
}

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        self.done.await.expect("server task").expect("server ran");
    }
}

/// Serves `app` on its bound port in a task.
pub fn spawn(app: Application) -> Running {
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}
