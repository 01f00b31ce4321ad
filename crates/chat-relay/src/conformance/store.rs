//! The [`MessageStore`] suite.

use crate::store::PAGE_MAX;
use crate::{Appended, ChatError, ChatMessage, Draft, MessageStore, RoomId, UserId};

use super::{draft, fresh_rooms};

/// Every check. `other` is a second handle on the same backend (a second node, with its own
/// caches); pass the same store again if there is no such thing.
pub async fn run_all(store: &dyn MessageStore) {
    run_all_with_peer(store, store).await;
}

/// Every check, with a second node's handle on the same backend.
pub async fn run_all_with_peer(store: &dyn MessageStore, peer: &dyn MessageStore) {
    run_one_at_a_time_with_peer(store, peer).await;
    rooms_written_at_once_keep_every_message(store, peer).await;
}

/// Every check that appends one message at a time: all but
/// [`rooms_written_at_once_keep_every_message`]. For emulators that do not isolate concurrent
/// writes: moto undoes a failed DynamoDB transaction by putting back the table as it was when
/// the transaction began, which erases other rooms' messages written in the meantime (seen as a
/// stored message that a later append wrote again).
pub async fn run_one_at_a_time_with_peer(store: &dyn MessageStore, peer: &dyn MessageStore) {
    same_millisecond_never_overwrites(store).await;
    a_late_clock_still_moves_forward(store).await;
    history_pages_newest_first_with_the_seed_cursor(store).await;
    after_replays_oldest_first(store).await;
    rooms_are_separate(store).await;
    limits_are_checked(store).await;
    two_writers_never_overwrite(store, peer).await;
    a_stale_writer_never_goes_back_in_time(store, peer).await;
    a_seq_is_stored_once(store, peer).await;
}

/// Appends a draft that must be new.
async fn stored(store: &dyn MessageStore, draft: &Draft) -> ChatMessage {
    match store.append(draft).await.unwrap() {
        Appended::Stored(message) => message,
        other => panic!("expected a new message, got {other:?}"),
    }
}

/// Messages accepted in the same millisecond all survive, in order.
pub async fn same_millisecond_never_overwrites(store: &dyn MessageStore) {
    let room = fresh_rooms();
    let mut times = Vec::new();
    for i in 0..5 {
        let m = stored(store, &draft(room, 1, &format!("m{i}"), 1_700_000_000_000)).await;
        assert_eq!(m.content, format!("m{i}"));
        times.push(m.send_time);
    }
    assert_eq!(
        times,
        (0..5).map(|i| 1_700_000_000_000 + i).collect::<Vec<_>>()
    );
    let page = store.history(room, None, 10).await.unwrap();
    let contents: Vec<_> = page.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m4", "m3", "m2", "m1", "m0"]);
}

/// A sender whose clock is behind the room's latest message gets the next millisecond.
pub async fn a_late_clock_still_moves_forward(store: &dyn MessageStore) {
    let room = fresh_rooms();
    let first = stored(store, &draft(room, 1, "now", 5_000)).await;
    let late = stored(store, &draft(room, 2, "late", 4_000)).await;
    assert_eq!(first.send_time, 5_000);
    assert_eq!(late.send_time, 5_001);
    assert_eq!(late.sender_id, UserId(2));
    assert_eq!(late.sender_name, "user 2");
    assert_eq!(late.chat_room_id, room);
}

/// History is newest first; the cursor is set on full pages and pages never overlap.
pub async fn history_pages_newest_first_with_the_seed_cursor(store: &dyn MessageStore) {
    let room = fresh_rooms();
    for i in 0..25 {
        stored(store, &draft(room, 1, &format!("m{i}"), 10_000 + i * 10)).await;
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.history(room, before, 10).await.unwrap();
        seen.extend(page.messages.iter().map(|m| m.send_time));
        match page.last_evaluated_send_time {
            Some(cursor) => {
                assert_eq!(page.messages.len(), 10, "a cursor only on full pages");
                assert_eq!(Some(cursor), page.messages.last().map(|m| m.send_time));
                before = Some(cursor);
            }
            None => {
                assert_eq!(page.messages.len(), 5);
                break;
            }
        }
    }
    let expected: Vec<i64> = (0..25).rev().map(|i| 10_000 + i * 10).collect();
    assert_eq!(seen, expected);
    // A full last page still has a cursor (as DynamoDB's LastEvaluatedKey), then an empty page.
    let exact = store.history(room, Some(10_050), 5).await.unwrap();
    assert_eq!(exact.last_evaluated_send_time, Some(10_000));
    let empty = store.history(room, Some(10_000), 5).await.unwrap();
    assert!(empty.messages.is_empty() && empty.last_evaluated_send_time.is_none());
}

/// `after` is exclusive and oldest first.
pub async fn after_replays_oldest_first(store: &dyn MessageStore) {
    let room = fresh_rooms();
    for i in 0..8 {
        stored(store, &draft(room, 1, &format!("m{i}"), 100 + i)).await;
    }
    let after: Vec<_> = store
        .after(room, 103, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(after, ["m4", "m5", "m6", "m7"]);
    let limited = store.after(room, 0, 3).await.unwrap();
    assert_eq!(limited.len(), 3);
    assert_eq!(limited[0].send_time, 100);
    assert!(store.after(room, 107, 10).await.unwrap().is_empty());
}

/// One room's messages never show up in another.
pub async fn rooms_are_separate(store: &dyn MessageStore) {
    let a = fresh_rooms();
    let b = RoomId(a.0 + 1);
    stored(store, &draft(a, 1, "in a", 1)).await;
    let page = store.history(b, None, 10).await.unwrap();
    assert!(page.messages.is_empty());
    assert!(store.after(b, 0, 10).await.unwrap().is_empty());
    // The same sendTime in another room is no clash.
    let other = stored(store, &draft(b, 1, "in b", 1)).await;
    assert_eq!(other.send_time, 1);
}

/// Page sizes outside 1..=PAGE_MAX are refused.
pub async fn limits_are_checked(store: &dyn MessageStore) {
    let room = fresh_rooms();
    for limit in [0, PAGE_MAX + 1] {
        assert!(matches!(
            store.history(room, None, limit).await,
            Err(ChatError::Invalid { field: "limit", .. })
        ));
        assert!(matches!(
            store.after(room, 0, limit).await,
            Err(ChatError::Invalid { field: "limit", .. })
        ));
    }
}

/// Two handles whose caches disagree (two nodes) still never overwrite each other.
pub async fn two_writers_never_overwrite(store: &dyn MessageStore, peer: &dyn MessageStore) {
    let room = fresh_rooms();
    let mut times = std::collections::BTreeSet::new();
    for i in 0..10 {
        let writer = if i % 2 == 0 { store } else { peer };
        let m = stored(writer, &draft(room, i, &format!("w{i}"), 42)).await;
        assert!(times.insert(m.send_time), "sendTime {} reused", m.send_time);
    }
    let page = store.history(room, None, 20).await.unwrap();
    assert_eq!(page.messages.len(), 10, "every message kept");
}

/// A writer whose idea of the latest message is old still stores after the newest one.
pub async fn a_stale_writer_never_goes_back_in_time(
    store: &dyn MessageStore,
    peer: &dyn MessageStore,
) {
    let room = fresh_rooms();
    stored(store, &draft(room, 1, "first", 1_000)).await;
    // The peer writes far ahead; `store` has not seen it.
    stored(peer, &draft(room, 2, "ahead", 5_000)).await;
    let behind = stored(store, &draft(room, 1, "behind", 2_000)).await;
    assert_eq!(
        behind.send_time, 5_001,
        "after the newest, not after what it last wrote"
    );
    let page = store.history(room, None, 10).await.unwrap();
    let order: Vec<_> = page.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(order, ["behind", "ahead", "first"]);
}

/// A draft with a `seq` is stored once, whoever appends it again; later ones still go after.
pub async fn a_seq_is_stored_once(store: &dyn MessageStore, peer: &dyn MessageStore) {
    let room = fresh_rooms();
    let with_seq = |seq: i64, content: &str, at: i64| {
        let mut d = draft(room, 1, content, at);
        d.seq = Some(seq);
        d
    };
    let first = stored(store, &with_seq(10, "a", 100)).await;
    let second = stored(store, &with_seq(11, "b", 100)).await;
    for writer in [store, peer] {
        assert_eq!(
            writer.append(&with_seq(10, "a again", 900)).await.unwrap(),
            Appended::Duplicate(Some(first.clone()))
        );
        assert_eq!(
            writer.append(&with_seq(11, "b again", 900)).await.unwrap(),
            Appended::Duplicate(Some(second.clone()))
        );
    }
    let third = stored(peer, &with_seq(12, "c", 50)).await;
    assert!(third.send_time > second.send_time);
    let page = store.history(room, None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 3, "no duplicate stored");
}

/// Many rooms appended to at once, one writer per room as the sequencer does, through both
/// handles and with some drafts appended twice: every message is stored once, in its room's
/// order, and a second append of a draft finds the first.
pub async fn rooms_written_at_once_keep_every_message(
    store: &dyn MessageStore,
    peer: &dyn MessageStore,
) {
    const ROOMS: i64 = 8;
    const MESSAGES: i64 = 12;
    let base = fresh_rooms();
    let room_writer = |room: i64| async move {
        let mut kept = Vec::new();
        for i in 0..MESSAGES {
            let (writer, other) = if (room + i) % 2 == 0 {
                (store, peer)
            } else {
                (peer, store)
            };
            let mut d = draft(RoomId(base.0 + room), room, &format!("r{room} m{i}"), 7);
            d.seq = Some(i);
            let message = stored(writer, &d).await;
            if i % 4 == 3 {
                // The same draft again, from the other handle: found, not stored.
                assert_eq!(
                    other.append(&d).await.unwrap(),
                    Appended::Duplicate(Some(message.clone())),
                    "room {room}: draft {i} appended twice"
                );
            }
            kept.push(message);
        }
        kept
    };
    let rooms = futures::future::join_all((0..ROOMS).map(room_writer)).await;
    for (room, kept) in (0..ROOMS).zip(rooms) {
        assert!(
            kept.windows(2).all(|w| w[0].send_time < w[1].send_time),
            "room {room}: sendTimes increase in the order of appends"
        );
        let page = store
            .history(RoomId(base.0 + room), None, 100)
            .await
            .unwrap();
        let mut oldest_first = page.messages;
        oldest_first.reverse();
        assert_eq!(
            oldest_first, kept,
            "room {room}: every message once, in order"
        );
    }
}
