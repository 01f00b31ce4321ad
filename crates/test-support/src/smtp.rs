//! A local SMTP server for tests: `scripts/smtp_sink.py` (aiosmtpd) run by [`TEST_PYTHON`](crate::PYTHON).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running SMTP sink. Dropping it stops the server.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpSink {
    /// Starts the sink with `python` on a free loopback port; returns once it listens.
    pub fn start(python: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(python, port)
    }

    /// Starts the sink on `port` (a server told to use it before it listened).
    pub fn start_on(python: &str, port: u16) -> Self {
        use std::io::BufRead;
        let out = std::env::temp_dir().join(format!("{}.json", crate::unique_name("smtp")));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sink output");
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd is installed (scripts/services.sh installs it)"
        );
        Self { child, port, out }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The first message received, waiting up to ten seconds: `{to, from, subject,
    /// content_type, message_id, body}` with the body decoded.
    pub fn message(&self) -> Option<serde_json::Value> {
        for _ in 0..200 {
            if let Some(first) = self.messages().into_iter().next() {
                return Some(first);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}
