//! STOMP over WebSocket with axum (feature `axum`): the handler upgrades and converts, the
//! protocol is [`ChatServer::serve`].
//!
//! Each WebSocket message may carry several STOMP frames or part of one; a heart-beat is a
//! message holding an end-of-line. Frames go out as text messages (binary when the body is not
//! UTF-8). The sub-protocols `v12.stomp` and `v11.stomp` are offered, as STOMP clients ask.

use std::collections::VecDeque;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};

use crate::ChatServer;
use crate::stomp::{Decoder, ParseError, Wire, to_bytes};

/// Buffer sizes per connection. tungstenite reads into a 128 KiB buffer by default; most chat
/// frames are a few hundred bytes, so a small one keeps idle connections cheap (it grows for a
/// larger message).
#[derive(Debug, Clone, Copy)]
pub struct Buffers {
    /// Initial read buffer.
    pub read: usize,
    /// Write buffer before a flush is forced.
    pub write: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            read: 4 * 1024,
            write: 16 * 1024,
        }
    }
}

/// Upgrades the request and serves STOMP on it.
pub fn upgrade(ws: WebSocketUpgrade, server: ChatServer, buffers: Buffers) -> Response {
    let max = server.config().limits.max_frame_bytes;
    ws.protocols(["v12.stomp", "v11.stomp", "v10.stomp"])
        .read_buffer_size(buffers.read)
        .write_buffer_size(buffers.write)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(socket, server))
}

/// Serves STOMP on an upgraded socket until it closes.
pub async fn serve(socket: WebSocket, server: ChatServer) {
    let limits = server.config().limits;
    let (sink, stream) = socket.split();
    let decoder = Decoder::new(limits);
    let incoming = futures::stream::unfold(
        (stream, decoder, VecDeque::new(), false),
        |(mut stream, mut decoder, mut ready, mut failed)| async move {
            loop {
                if let Some(item) = ready.pop_front() {
                    return Some((Ok(item), (stream, decoder, ready, failed)));
                }
                if failed {
                    return None;
                }
                let bytes = match stream.next().await? {
                    Ok(Message::Text(text)) => bytes::Bytes::from(text),
                    Ok(Message::Binary(bytes)) => bytes,
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(Message::Close(_)) | Err(_) => return None,
                };
                decoder.push(&bytes);
                loop {
                    match decoder.next_inbound() {
                        Ok(Some(item)) => ready.push_back(item),
                        Ok(None) => break,
                        Err(e) => {
                            failed = true;
                            let item: Result<Wire, ParseError> = Err(e);
                            return Some((item, (stream, decoder, ready, failed)));
                        }
                    }
                }
            }
        },
    );
    let outgoing = sink.with(|wire: Wire| async move {
        Ok::<_, axum::Error>(match wire {
            Wire::Heartbeat => Message::Text(Utf8Bytes::from_static("\n")),
            Wire::Frame(frame) => {
                let bytes = to_bytes(&frame);
                match Utf8Bytes::try_from(bytes.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::Binary(bytes),
                }
            }
        })
    });
    server.serve(Box::pin(incoming), Box::pin(outgoing)).await;
}
