//! A connection's life: CONNECT and its negotiation, the loop that reads frames, writes
//! deliveries and keeps heart-beats, and the ERROR and close at the end.

use super::*;

impl<K: Sink<Wire> + Send + Unpin> Conn<'_, K> {
    pub(super) async fn write(&mut self, frame: Frame) -> bool {
        self.last_write = Instant::now();
        self.timed(|out| out.send(Wire::Frame(frame))).await.is_ok()
    }

    pub(super) async fn fail(&mut self, fault: Fault) {
        let mut frame = Frame::new(Command::Error).with("message", fault.message);
        if let Some(receipt) = fault.receipt {
            frame = frame.with("receipt-id", receipt);
        }
        if fault.versions {
            frame = frame.with("version", stomp::VERSIONS.join(","));
        }
        if !fault.detail.is_empty() {
            frame = frame
                .with("content-type", "text/plain")
                .with_body(fault.detail);
        }
        // A peer that stopped reading must not keep the connection open for ever.
        let _ = tokio::time::timeout(FAREWELL, async {
            let _ = self.write(frame).await;
            let _ = self.out.close().await;
        })
        .await;
    }

    pub(super) async fn close(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let hub = &self.server.hub;
        for subscription in state.subscriptions.values() {
            match subscription.target {
                Target::Room(room) => hub.unsubscribe_room(&state.outbox, &subscription.id, room),
                Target::Unread => {
                    hub.unsubscribe_user(&state.outbox, &subscription.id, state.member.id);
                }
                Target::Feed => {}
            }
        }
        for (room, count) in state.entered {
            for _ in 0..count {
                if let Err(e) = self.server.presence.exit(room, state.member.id).await {
                    tracing::warn!(
                        room = room.0,
                        error = &e as &dyn std::error::Error,
                        "presence exit failed"
                    );
                }
            }
        }
        hub.disconnect(state.outbox);
        let _ = tokio::time::timeout(FAREWELL, self.out.close()).await;
    }

    pub(super) async fn connect(
        &mut self,
        frame: &Frame,
    ) -> Result<(mpsc::Receiver<Push>, stomp::Heartbeats), Fault> {
        if !matches!(frame.command, Command::Connect | Command::Stomp) {
            return Err(Fault::new("expected CONNECT").about(frame));
        }
        // A CONNECT without `accept-version` is a STOMP 1.0 client. 1.0 is refused, saying so:
        // it has no heart-beats (the only way this server notices a dead peer behind a proxy)
        // and no header escaping (so a destination or subscription id holding `:` or a line
        // break would reach it garbled).
        let version =
            stomp::negotiate_version(frame.header("accept-version")).ok_or_else(|| {
                let why = match frame.header("accept-version") {
                    None => {
                        "a CONNECT without accept-version speaks STOMP 1.0, which this server \
                         does not (no heart-beats, no header escaping); send accept-version:1.2"
                    }
                    Some(_) => "supported versions are 1.2 and 1.1",
                };
                let mut fault = Fault::new("unsupported protocol version").detail(why);
                fault.versions = true;
                fault
            })?;
        let session = self
            .server
            .gatekeeper
            .authenticate(frame)
            .await
            .map_err(|refusal| Fault::new(refusal.message))?;
        let member = session.member;
        let config = &self.server.config;
        let heartbeats =
            stomp::negotiate_heartbeats(frame.header("heart-beat"), config.heartbeat_ms);
        let (outbox, rx) = self
            .server
            .hub
            .connect(
                member.id,
                config.outbound_capacity,
                config.max_connections_per_user,
            )
            .map_err(|e| {
                Fault::new("too many connections").detail(format!(
                    "{e}; at most {} are allowed",
                    config.max_connections_per_user
                ))
            })?;
        let now = self.server.clock.now().timestamp_millis();
        let expires = session
            .expires_at
            .map(|at| Instant::now() + Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
        let millis = |d: Option<Duration>| d.map_or(0, |d| d.as_millis());
        let connected = Frame::new(Command::Connected)
            .with("version", version)
            .with(
                "heart-beat",
                format!("{},{}", millis(heartbeats.send), millis(heartbeats.receive)),
            )
            .with("server", config.server_name.clone())
            .with("session", outbox.id().to_string())
            .with("user-name", member.id.to_string());
        self.state = Some(State {
            member,
            outbox,
            subscriptions: HashMap::new(),
            entered: HashMap::new(),
            allowed: HashSet::new(),
            message_ids: 0,
            expires,
            bucket: config.send_rate.map(Bucket::new),
        });
        if !self.write(connected).await {
            return Err(Fault::new("connection lost"));
        }
        Ok((rx, heartbeats))
    }

    /// The connected loop. Returns the fault to report, or `None` for a quiet close.
    pub(super) async fn run<S>(
        &mut self,
        incoming: &mut S,
        mut rx: mpsc::Receiver<Push>,
        heartbeats: stomp::Heartbeats,
    ) -> Option<Fault>
    where
        S: Stream<Item = Result<Wire, ParseError>> + Send + Unpin,
    {
        let overflowed = self.state.as_ref()?.outbox.overflowed().clone();
        let expires = self.state.as_ref()?.expires;
        let shutdown = self.server.shutdown.clone();
        let far_future = Duration::from_secs(86_400 * 365);
        let send_every = heartbeats.send.unwrap_or(far_future);
        // The spec allows for network delays; a peer is dead after twice its period of silence.
        let silence_limit = heartbeats.receive.map_or(far_future, |d| d * 2);
        let mut last_read = Instant::now();
        // A frame other than SEND waits here until every SEND before it is done, so that its
        // receipt (a DISCONNECT's, say) means everything the client sent before is stored.
        let mut held: Option<Frame> = None;
        loop {
            if self.sending.is_empty()
                && let Some(frame) = held.take()
                && let Some(end) = ended(self.handle(frame).await)
            {
                return end;
            }
            let next_beat = self.last_write + send_every;
            let deadline = last_read + silence_limit;
            let reading = held.is_none() && !self.sending.is_full();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    return Some(Fault::new("server shutting down").detail(
                        "reconnect (another node answers) and SUBSCRIBE with resume-after to continue",
                    ));
                }
                () = tokio::time::sleep_until(expires.unwrap_or(deadline)), if expires.is_some() => {
                    return Some(Fault::new("session expired")
                        .detail("reconnect with a fresh access token"));
                }
                () = overflowed.cancelled() => {
                    return Some(Fault::new("slow consumer").detail(
                        "too many messages were waiting for this connection",
                    ));
                }
                // Before reading more: each SEND done makes room for another.
                Some(sent) = self.sending.next(), if !self.sending.is_empty() => {
                    if let Some(end) = ended(self.sent(sent).await) {
                        return end;
                    }
                }
                item = incoming.next(), if reading => {
                    last_read = Instant::now();
                    match item {
                        None => return None,
                        Some(Err(e)) => return Some(Fault::malformed(&e)),
                        Some(Ok(Wire::Heartbeat)) => {}
                        Some(Ok(Wire::Frame(frame))) => {
                            if frame.command != Command::Send && !self.sending.is_empty() {
                                held = Some(frame);
                                continue;
                            }
                            if let Some(end) = ended(self.handle(frame).await) {
                                return end;
                            }
                        }
                    }
                }
                push = rx.recv() => {
                    let push = push?;
                    // A client that stops reading blocks the write; its outbox then overflows.
                    let delivered = tokio::select! {
                        delivered = self.deliver(push, &mut rx) => delivered,
                        () = overflowed.cancelled() => {
                            return Some(Fault::new("slow consumer").detail(
                                "too many messages were waiting for this connection",
                            ));
                        }
                    };
                    if let Err(end) = delivered {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(next_beat) => {
                    self.last_write = Instant::now();
                    if self.out.send(Wire::Heartbeat).await.is_err() {
                        return None;
                    }
                }
                // Not while the client's frames wait unread: its heart-beats are among them.
                () = tokio::time::sleep_until(deadline), if reading => {
                    return Some(Fault::new("heart-beat timeout"));
                }
            }
        }
    }

    /// Writes `first` and whatever else is already waiting, then flushes once. `Err` ends the
    /// connection: with the fault to report (a revocation, a write that timed out), or `None`
    /// when the client is gone.
    pub(super) async fn deliver(
        &mut self,
        first: Push,
        rx: &mut mpsc::Receiver<Push>,
    ) -> Result<(), Option<Fault>> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(push) = next.take() {
            if let Push::Revoke { room, reason } = &push {
                let state = self.state.as_ref().ok_or(None)?;
                if room.is_none_or(|room| state.allowed.contains(&room)) {
                    return Err(Some(Fault::new(reason.to_string())));
                }
            } else if let Some(frame) = self.message_frame(push) {
                self.timed(|out| out.feed(Wire::Frame(frame))).await?;
            }
            written += 1;
            if written < 256 {
                next = rx.try_recv().ok();
            }
        }
        self.last_write = Instant::now();
        self.timed(|out| out.flush()).await
    }

    /// One write to the client, within the write timeout.
    pub(super) async fn timed<'s, F>(
        &'s mut self,
        write: impl FnOnce(&'s mut K) -> F,
    ) -> Result<(), Option<Fault>>
    where
        F: Future<Output = Result<(), K::Error>> + 's,
    {
        match tokio::time::timeout(self.server.config.write_timeout, write(&mut self.out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(
                Fault::new("slow consumer")
                    .detail("the client did not read what was sent to it in time"),
            )),
        }
    }

    pub(super) fn message_frame(&mut self, push: Push) -> Option<Frame> {
        let state = self.state.as_mut()?;
        let (subscription_id, body, send_time) = match push {
            Push::Message {
                subscription,
                send_time,
                body,
                ..
            } => (subscription, body, Some(send_time)),
            Push::Unread { subscription, body } | Push::Feed { subscription, body } => {
                (subscription, body, None)
            }
            Push::Revoke { .. } => return None,
        };
        let subscription = state.subscriptions.get_mut(&*subscription_id)?;
        if let Some(send_time) = send_time {
            if send_time <= subscription.last {
                return None;
            }
            subscription.last = send_time;
        }
        state.message_ids += 1;
        let id = match (subscription.target, send_time) {
            (Target::Room(room), Some(send_time)) => format!("{room}-{send_time}"),
            _ => format!("u-{}-{}", state.outbox.id(), state.message_ids),
        };
        let mut frame = Frame::new(Command::Message)
            .with("destination", subscription.destination.clone())
            .with("message-id", id.clone())
            .with("subscription", &*subscription.id)
            .with("content-type", "application/json");
        if subscription.ack == Ack::Client {
            frame = frame.with("ack", id);
        }
        Some(frame.with_body(body))
    }

    /// Answers a SEND once it is published: its receipt, or the ERROR for its failure.
    pub(super) async fn sent(&mut self, sent: Sent) -> Result<Flow, Fault> {
        let Sent { receipt, result } = sent;
        if let Err(e) = result {
            let mut fault = Fault::from(e);
            fault.receipt = receipt;
            return Err(fault);
        }
        Ok(self.receipt(receipt.as_deref(), Flow::Continue).await)
    }

    /// Sends the RECEIPT a frame asked for, if it did; then `flow`, or a disconnect if the
    /// connection is gone.
    pub(super) async fn receipt(&mut self, receipt: Option<&str>, flow: Flow) -> Flow {
        match receipt {
            Some(receipt)
                if !self
                    .write(Frame::new(Command::Receipt).with("receipt-id", receipt))
                    .await =>
            {
                Flow::Disconnect
            }
            _ => flow,
        }
    }
}
