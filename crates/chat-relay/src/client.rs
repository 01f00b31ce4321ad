//! A small STOMP-over-WebSocket client (feature `client`): enough for tests, load tools and
//! bots. Heart-beats from the server are skipped; the client sends none (it asks for `0,0`
//! unless told otherwise).

use std::collections::VecDeque;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ChatError;
use crate::stomp::{Command, Decoder, Frame, Limits, Wire, to_bytes};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// One client connection.
pub struct Client {
    socket: Socket,
    decoder: Decoder,
    ready: VecDeque<Frame>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ChatError {
    ChatError::unavailable("websocket", e)
}

impl Client {
    /// Opens the WebSocket and sends CONNECT with `headers` (plus `accept-version` and `host`
    /// unless given). Returns the client and the server's answer: CONNECTED, or an ERROR.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> crate::Result<(Self, Frame)> {
        let mut request = url.into_client_request().map_err(failed)?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "v12.stomp, v11.stomp".parse().expect("a valid header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(failed)?;
        let mut client = Self {
            socket,
            decoder: Decoder::new(Limits {
                max_frame_bytes: 16 * 1024 * 1024,
                ..Limits::default()
            }),
            ready: VecDeque::new(),
        };
        let mut connect = Frame::new(Command::Connect);
        for (name, value) in headers {
            connect = connect.with(*name, *value);
        }
        if connect.header("accept-version").is_none() {
            connect = connect.with("accept-version", "1.2,1.1");
        }
        if connect.header("host").is_none() {
            connect = connect.with("host", "somsom");
        }
        client.send_frame(&connect).await?;
        let answer = client
            .next_frame()
            .await?
            .ok_or_else(|| failed("closed before CONNECTED"))?;
        Ok((client, answer))
    }

    /// Sends a frame.
    pub async fn send_frame(&mut self, frame: &Frame) -> crate::Result<()> {
        let bytes = to_bytes(frame);
        let text = String::from_utf8(bytes.to_vec()).map_err(failed)?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(failed)
    }

    /// Subscribes `id` to `destination`, with extra headers (`receipt`, `resume-after`, …).
    pub async fn subscribe(
        &mut self,
        id: &str,
        destination: &str,
        extra: &[(&str, &str)],
    ) -> crate::Result<()> {
        let mut frame = Frame::new(Command::Subscribe)
            .with("id", id)
            .with("destination", destination);
        for (name, value) in extra {
            frame = frame.with(*name, *value);
        }
        self.send_frame(&frame).await
    }

    /// SENDs a JSON body to `destination`.
    pub async fn send_json(
        &mut self,
        destination: &str,
        body: &serde_json::Value,
        extra: &[(&str, &str)],
    ) -> crate::Result<()> {
        let mut frame = Frame::new(Command::Send)
            .with("destination", destination)
            .with("content-type", "application/json");
        for (name, value) in extra {
            frame = frame.with(*name, *value);
        }
        self.send_frame(&frame.with_body(body.to_string())).await
    }

    /// The next frame (heart-beats skipped); `None` once the connection is closed.
    pub async fn next_frame(&mut self) -> crate::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let bytes = match self.socket.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(failed(e)),
                Some(Ok(Message::Text(text))) => bytes::Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            };
            self.decoder.push(&bytes);
            while let Some(item) = self.decoder.next_inbound().map_err(failed)? {
                if let Wire::Frame(frame) = item {
                    self.ready.push_back(frame);
                }
            }
        }
    }

    /// Closes the WebSocket without DISCONNECT (a dropped network, as far as the server knows).
    pub async fn drop_connection(mut self) {
        let _ = self.socket.close(None).await;
    }
}
