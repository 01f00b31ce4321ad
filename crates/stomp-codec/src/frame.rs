//! STOMP frames: a command, ordered headers and a body.

use bytes::Bytes;

/// A frame's command. Client and server commands share one enum so that one parser serves both
/// ends (the tests and the load tool speak the client side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// `CONNECT`
    Connect,
    /// `STOMP` (the 1.2 name for `CONNECT`)
    Stomp,
    /// `CONNECTED`
    Connected,
    /// `SEND`
    Send,
    /// `SUBSCRIBE`
    Subscribe,
    /// `UNSUBSCRIBE`
    Unsubscribe,
    /// `ACK`
    Ack,
    /// `NACK`
    Nack,
    /// `BEGIN`
    Begin,
    /// `COMMIT`
    Commit,
    /// `ABORT`
    Abort,
    /// `DISCONNECT`
    Disconnect,
    /// `MESSAGE`
    Message,
    /// `RECEIPT`
    Receipt,
    /// `ERROR`
    Error,
}

impl Command {
    const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (case-sensitive, as the spec says).
    pub fn parse(text: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|command| command.as_str().as_bytes() == text)
    }

    /// `CONNECT`, `STOMP` and `CONNECTED` frames never escape their headers (STOMP 1.2).
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }

    /// Whether the frame may carry a body.
    pub fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One STOMP frame. Headers keep their order and repeats; [`Frame::header`] returns the first
/// occurrence, which is the one that counts (STOMP 1.2, "Repeated Header Entries").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// Headers in the order they appeared, unescaped.
    pub headers: Vec<(String, String)>,
    /// The body (empty for most commands).
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (builder style).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (builder style).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as UTF-8 text, if it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// What travels in either direction: a frame, or a heart-beat (a bare end-of-line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A frame.
    Frame(Frame),
    /// A heart-beat.
    Heartbeat,
}
