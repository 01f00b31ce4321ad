//! The [`Presence`] suite.

use crate::Presence;
use crate::{RoomId, UserId};

use super::fresh_rooms;

/// Every check.
pub async fn run_all(presence: &dyn Presence) {
    absent_members_count_unread(presence).await;
    entering_resets_and_counts_subscriptions(presence).await;
    leaving_forgets(presence).await;
    counts_are_per_room(presence).await;
}

/// Members who are not present get one more unread per message; present ones and strangers none.
pub async fn absent_members_count_unread(presence: &dyn Presence) {
    let room = fresh_rooms();
    let members = [UserId(1), UserId(2)];
    presence.enter(room, UserId(1)).await.unwrap();
    presence.enter(room, UserId(3)).await.unwrap(); // present but not a member
    assert_eq!(presence.unread(UserId(2), &[room]).await.unwrap(), [None]);
    let counted = presence.count_message(room, &members).await.unwrap();
    assert_eq!(counted, [(UserId(2), 1)]);
    let counted = presence.count_message(room, &members).await.unwrap();
    assert_eq!(counted, [(UserId(2), 2)]);
    assert_eq!(
        presence.unread(UserId(2), &[room]).await.unwrap(),
        [Some(2)]
    );
    assert_eq!(
        presence.unread(UserId(1), &[room]).await.unwrap(),
        [Some(0)]
    );
    assert_eq!(
        presence.unread(UserId(3), &[room]).await.unwrap(),
        [Some(0)]
    );
    assert!(presence.unread(UserId(1), &[]).await.unwrap().is_empty());
}

/// Entering resets the count; a user with two subscriptions stays present until both end.
pub async fn entering_resets_and_counts_subscriptions(presence: &dyn Presence) {
    let room = fresh_rooms();
    let members = [UserId(7)];
    presence.count_message(room, &members).await.unwrap();
    presence.count_message(room, &members).await.unwrap();
    assert_eq!(
        presence.unread(UserId(7), &[room]).await.unwrap(),
        [Some(2)]
    );
    presence.enter(room, UserId(7)).await.unwrap();
    presence.enter(room, UserId(7)).await.unwrap();
    assert!(presence.is_present(room, UserId(7)).await.unwrap());
    assert_eq!(
        presence.unread(UserId(7), &[room]).await.unwrap(),
        [Some(0)]
    );
    presence.exit(room, UserId(7)).await.unwrap();
    assert!(
        presence.is_present(room, UserId(7)).await.unwrap(),
        "one tab left"
    );
    assert!(
        presence
            .count_message(room, &members)
            .await
            .unwrap()
            .is_empty()
    );
    presence.exit(room, UserId(7)).await.unwrap();
    assert!(!presence.is_present(room, UserId(7)).await.unwrap());
    assert_eq!(
        presence.count_message(room, &members).await.unwrap(),
        [(UserId(7), 1)]
    );
}

/// Forgetting (after a leave) drops the count; nobody is counted without being a member.
pub async fn leaving_forgets(presence: &dyn Presence) {
    let room = fresh_rooms();
    presence.count_message(room, &[UserId(5)]).await.unwrap();
    presence.forget(room, UserId(5)).await.unwrap();
    assert_eq!(presence.unread(UserId(5), &[room]).await.unwrap(), [None]);
    assert!(presence.count_message(room, &[]).await.unwrap().is_empty());
    presence.forget(room, UserId(5)).await.unwrap(); // idempotent
}

/// Counts are per room.
pub async fn counts_are_per_room(presence: &dyn Presence) {
    let a = fresh_rooms();
    let b = RoomId(a.0 + 1);
    let members = [UserId(9)];
    presence.enter(b, UserId(9)).await.unwrap();
    presence.count_message(a, &members).await.unwrap();
    presence.count_message(a, &members).await.unwrap();
    presence.count_message(b, &members).await.unwrap();
    assert_eq!(
        presence
            .unread(UserId(9), &[a, b, RoomId(b.0 + 1)])
            .await
            .unwrap(),
        [Some(2), Some(0), None]
    );
}
