//! A small STOMP-over-WebSocket client (feature `client`): enough for tests, load tools and
//! bots. Heart-beats from the server are skipped; the client sends none (it asks for `0,0`
//! unless told otherwise).

use std::collections::VecDeque;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ChatError;
use crate::stomp::{Command, Decoder, Frame, Limits, Wire, to_bytes};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The initial WebSocket read buffer.
const READ_BUFFER: usize = 8 * 1024;

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
        // tungstenite zero-fills its whole read buffer (128 KiB by default) before every read;
        // chat frames are small, and a load tool's thousand clients spent a third of their CPU
        // in that memset. The buffer still grows for a larger message.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        // Small frames, sent as they come (no Nagle delay behind an unacknowledged one).
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
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
            connect = connect.with("host", "chat");
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

#[cfg(test)]
mod tests {
    use super::*;

    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

    /// The handshake answer a STOMP server gives: the sub-protocol the client asked for.
    #[allow(clippy::result_large_err, reason = "tungstenite's callback signature")]
    fn answer_stomp(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        let protocol = "v12.stomp".parse().expect("a valid header");
        response
            .headers_mut()
            .insert("sec-websocket-protocol", protocol);
        Ok(response)
    }

    /// The client's small read buffer grows for a message larger than it: a 128 KiB body of
    /// multi-byte characters arrives whole, split across many reads.
    #[tokio::test]
    async fn a_message_larger_than_the_read_buffer_arrives_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let body: String = "축제🎉".repeat(128 * 1024 / 10);
        assert!(body.len() > 8 * READ_BUFFER);
        let sent = body.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, answer_stomp)
                .await
                .unwrap();
            let connect = ws.next().await.unwrap().unwrap();
            assert!(connect.to_text().unwrap().starts_with("CONNECT\n"));
            for frame in [
                Frame::new(Command::Connected).with("version", "1.2"),
                Frame::new(Command::Message)
                    .with("destination", "/topic/big")
                    .with("subscription", "0")
                    .with("message-id", "1")
                    .with_body(sent),
            ] {
                let text = String::from_utf8(to_bytes(&frame).to_vec()).unwrap();
                ws.send(Message::Text(text.into())).await.unwrap();
            }
            // Held open until the client has read everything.
            ws.next().await;
        });
        let (mut client, connected) = Client::connect(&url, &[]).await.unwrap();
        assert_eq!(connected.command, Command::Connected);
        let message = client.next_frame().await.unwrap().unwrap();
        assert_eq!(message.command, Command::Message);
        assert_eq!(message.body_text(), Some(body.as_str()));
        client.drop_connection().await;
        server.await.unwrap();
    }
}
