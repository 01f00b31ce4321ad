//! The client frames after CONNECT: SEND, SUBSCRIBE (with `resume-after` replay), UNSUBSCRIBE,
//! ACK/NACK, DISCONNECT and the refusals.

use super::*;

impl<K: Sink<Wire> + Send + Unpin> Conn<'_, K> {
    pub(super) async fn handle(&mut self, frame: Frame) -> Result<Flow, Fault> {
        let flow = match frame.command {
            Command::Send => {
                let state = self.state.as_mut().expect("connected");
                if let Some(bucket) = &mut state.bucket
                    && !bucket.take()
                {
                    let rate = bucket.rate;
                    return Err(Fault::new("too many messages")
                        .detail(format!(
                            "at most {} messages a second, {} at once",
                            rate.per_second, rate.burst
                        ))
                        .about(&frame));
                }
                let draft = self.on_send(&frame).await.map_err(|f| f.about(&frame))?;
                // Its receipt goes out once it is published (`sent`).
                self.sending
                    .push(draft, frame.header("receipt").map(str::to_owned));
                return Ok(Flow::Continue);
            }
            Command::Subscribe => self.on_subscribe(&frame).await,
            Command::Unsubscribe => self.on_unsubscribe(&frame).await,
            Command::Ack | Command::Nack => required(&frame, "id")
                .or_else(|_| required(&frame, "message-id"))
                .map(|_| Flow::Continue),
            Command::Disconnect => Ok(Flow::Disconnect),
            Command::Begin | Command::Commit | Command::Abort => {
                Err(Fault::new("transactions are not supported"))
            }
            Command::Connect | Command::Stomp => Err(Fault::new("already connected")),
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                Err(Fault::new(format!("{} is a server frame", frame.command)))
            }
            // A command a later STOMP version adds.
            _ => Err(Fault::new(format!("{} is not supported", frame.command))),
        }
        .map_err(|fault| fault.about(&frame))?;
        Ok(self.receipt(frame.header("receipt"), flow).await)
    }

    pub(super) async fn allow(&mut self, room: RoomId) -> Result<(), Fault> {
        let state = self.state.as_mut().expect("connected");
        if state.allowed.contains(&room) {
            return Ok(());
        }
        self.server
            .gatekeeper
            .may_enter(&state.member, room)
            .await
            .map_err(|refusal| Fault::new(refusal.message))?;
        state.allowed.insert(room);
        Ok(())
    }

    /// Checks a SEND and turns it into the draft to publish.
    pub(super) async fn on_send(&mut self, frame: &Frame) -> Result<Draft, Fault> {
        let destinations = &self.server.config.destinations;
        let destination = required(frame, "destination")?;
        if destination != destinations.send {
            return Err(Fault::new("unknown destination")
                .detail(format!("messages are sent to {}", destinations.send)));
        }
        let (room, content) = self
            .server
            .config
            .fields
            .send(&frame.body)
            .map_err(|why| Fault::new("invalid message body").detail(why))?;
        self.allow(room).await?;
        let member = &self.state.as_ref().expect("connected").member;
        Ok(Draft::new(
            room,
            member,
            content,
            self.server.clock.now().timestamp_millis(),
        )?)
    }

    pub(super) async fn on_subscribe(&mut self, frame: &Frame) -> Result<Flow, Fault> {
        let id = required(frame, "id")?.to_owned();
        let destination = required(frame, "destination")?.to_owned();
        let ack = match frame.header("ack").unwrap_or("auto") {
            "auto" => Ack::Auto,
            "client" | "client-individual" => Ack::Client,
            other => return Err(Fault::new(format!("unknown ack mode {other}"))),
        };
        let subscriptions = &self.state.as_ref().expect("connected").subscriptions;
        if subscriptions.contains_key(&id) {
            return Err(Fault::new(format!(
                "subscription id {id} is already in use"
            )));
        }
        let max = self.server.config.max_subscriptions;
        if subscriptions.len() >= max {
            return Err(Fault::new("too many subscriptions")
                .detail(format!("at most {max} per connection")));
        }
        let destinations = &self.server.config.destinations;
        let room = destination
            .strip_prefix(destinations.room_prefix.as_str())
            .and_then(|n| n.parse::<RoomId>().ok());
        let mut feed = None;
        let target = if destination == destinations.unread {
            Target::Unread
        } else if let Some(room) = room {
            self.allow(room).await?;
            Target::Room(room)
        } else {
            let member = &self.state.as_ref().expect("connected").member;
            let opened = self
                .server
                .feeds
                .open(member, &destination)
                .await
                .map_err(|refusal| Fault::new(refusal.message))?;
            feed = Some(opened.ok_or_else(|| {
                Fault::new("unknown destination").detail(format!(
                    "rooms are {}N; unread counts are {}",
                    destinations.room_prefix, destinations.unread
                ))
            })?);
            Target::Feed
        };
        let resume_after = frame
            .header("resume-after")
            .map(|value| {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| Fault::new("resume-after must be a sendTime"))
            })
            .transpose()?;
        let hub = self.server.hub.clone();
        let state = self.state.as_mut().expect("connected");
        let key: Arc<str> = Arc::from(id.as_str());
        let guard = match target {
            Target::Unread => {
                hub.subscribe_user(&state.outbox, key.clone(), state.member.id);
                None
            }
            // Live messages queue up from here on while the replay below is read; the
            // subscription's `last` drops the ones the replay already sent.
            Target::Room(room) => {
                hub.subscribe_room(&state.outbox, key.clone(), room);
                None
            }
            Target::Feed => feed.map(|feed| state.outbox.forward(key.clone(), feed)),
        };
        state.subscriptions.insert(
            id,
            Subscription {
                id: key.clone(),
                target,
                destination,
                ack,
                last: i64::MIN,
                _feed: guard,
            },
        );
        let Target::Room(room) = target else {
            return Ok(Flow::Continue);
        };
        let member = state.member.id;
        let entered = state.entered.entry(room).or_default();
        *entered += 1;
        self.server.presence.enter(room, member).await?;
        if let Some(after) = resume_after {
            self.replay(&key, room, after).await?;
        }
        Ok(Flow::Continue)
    }

    /// Sends the messages after `after`, oldest first: at most `max_replay`, the newest ones, the
    /// first of them marked `replay-gap: true` when older ones were left out.
    pub(super) async fn replay(
        &mut self,
        subscription: &Arc<str>,
        room: RoomId,
        after: i64,
    ) -> Result<(), Fault> {
        let max = self.server.config.max_replay;
        // Newest first, back to `after`, one more than `max` to learn whether there is a gap.
        let mut newest_first = Vec::new();
        let mut before = None;
        loop {
            let want = PAGE_MAX.min(max + 1 - newest_first.len());
            let page = self.server.store.history(room, before, want).await?;
            let full = page.messages.len() == want;
            let mut reached = false;
            for message in page.messages {
                if message.send_time <= after {
                    reached = true;
                    break;
                }
                newest_first.push(message);
            }
            if reached || !full || newest_first.len() > max {
                break;
            }
            before = newest_first.last().map(|m| m.send_time);
        }
        let gap = newest_first.len() > max;
        newest_first.truncate(max);
        let lost = Fault::new("connection lost");
        for (i, message) in newest_first.into_iter().rev().enumerate() {
            let push = Push::Message {
                subscription: subscription.clone(),
                send_time: message.send_time,
                body: self.server.config.fields.message(&message),
            };
            if let Some(mut frame) = self.message_frame(push) {
                if gap && i == 0 {
                    frame = frame.with("replay-gap", "true");
                }
                self.timed(|out| out.feed(Wire::Frame(frame)))
                    .await
                    .map_err(|end| end.unwrap_or_else(|| lost.clone()))?;
            }
        }
        self.last_write = Instant::now();
        self.timed(|out| out.flush())
            .await
            .map_err(|end| end.unwrap_or(lost))
    }

    pub(super) async fn on_unsubscribe(&mut self, frame: &Frame) -> Result<Flow, Fault> {
        let id = required(frame, "id")?;
        let state = self.state.as_mut().expect("connected");
        let Some(subscription) = state.subscriptions.remove(id) else {
            return Err(Fault::new(format!("no subscription {id}")));
        };
        match subscription.target {
            Target::Unread => {
                self.server
                    .hub
                    .unsubscribe_user(&state.outbox, id, state.member.id);
            }
            Target::Room(room) => {
                self.server.hub.unsubscribe_room(&state.outbox, id, room);
                if let Some(count) = state.entered.get_mut(&room) {
                    *count -= 1;
                    if *count == 0 {
                        state.entered.remove(&room);
                    }
                }
                self.server.presence.exit(room, state.member.id).await?;
            }
            // Dropping the subscription stopped its feed.
            Target::Feed => {}
        }
        Ok(Flow::Continue)
    }
}
