//! Checks for [`Ledger`] backends.

use chrono::{DateTime, Utc};

use crate::conformance::{fresh_user, reminder};
use crate::{Begin, DeliveryId, Ledger};

/// Every check below; `now` is any recent instant.
pub async fn run_all(ledger: &dyn Ledger, now: DateTime<Utc>) {
    deliveries_begin_once_until_stale(ledger, now).await;
    notifications_are_listed_once_newest_first(ledger, now).await;
}

/// A fresh delivery begins; while in flight it is busy; once stale it is in doubt; once sent it
/// is skipped for good.
pub async fn deliveries_begin_once_until_stale(ledger: &dyn Ledger, now: DateTime<Utc>) {
    let user = fresh_user();
    let key = reminder(user, 1, now).key;
    let id = |token: &str| DeliveryId {
        reminder: key,
        token: token.to_owned(),
    };
    let minute = chrono::Duration::minutes(1);
    let (a, b) = (id("device-a"), id("device-b"));
    assert_eq!(
        ledger
            .begin(&[a.clone(), b.clone()], now, now - minute)
            .await
            .unwrap(),
        vec![Begin::Fresh, Begin::Fresh]
    );
    assert_eq!(
        ledger
            .begin(&[a.clone(), b.clone()], now, now - minute)
            .await
            .unwrap(),
        vec![Begin::Busy, Begin::Busy],
        "in flight since now, which is not stale"
    );
    ledger.sent(std::slice::from_ref(&a), now).await.unwrap();
    let later = now + minute * 2;
    assert_eq!(
        ledger
            .begin(&[a.clone(), b.clone()], later, later - minute)
            .await
            .unwrap(),
        vec![Begin::Sent, Begin::InDoubt]
    );
    assert_eq!(
        ledger
            .begin(std::slice::from_ref(&b), later, later - minute)
            .await
            .unwrap(),
        vec![Begin::Busy],
        "in doubt marks it in flight again"
    );
    ledger.sent(std::slice::from_ref(&b), later).await.unwrap();
    ledger.sent(std::slice::from_ref(&b), later).await.unwrap();
    assert_eq!(
        ledger
            .begin(&[b, a], later + minute * 10, later + minute * 9)
            .await
            .unwrap(),
        vec![Begin::Sent, Begin::Sent]
    );
    assert!(ledger.begin(&[], now, now).await.unwrap().is_empty());
    // A failed send is abandoned: the next attempt begins it at once; a sent one stays sent.
    let c = id("device-c");
    assert_eq!(
        ledger
            .begin(std::slice::from_ref(&c), later, later - minute)
            .await
            .unwrap(),
        vec![Begin::Fresh]
    );
    ledger.abandon(&[c.clone(), id("device-a")]).await.unwrap();
    ledger.abandon(&[]).await.unwrap();
    assert_eq!(
        ledger
            .begin(&[c, id("device-a")], later, later - minute)
            .await
            .unwrap(),
        vec![Begin::Fresh, Begin::Sent]
    );
    // Same token, another reminder: a separate delivery.
    let other = DeliveryId {
        reminder: reminder(user, 2, now).key,
        token: "device-a".into(),
    };
    assert_eq!(
        ledger.begin(&[other], now, now - minute).await.unwrap(),
        vec![Begin::Fresh]
    );
}

/// A reminder enters its user's list once however often it is reported; lists are per user,
/// newest first, limited.
pub async fn notifications_are_listed_once_newest_first(ledger: &dyn Ledger, now: DateTime<Utc>) {
    let user = fresh_user();
    let first = reminder(user, 1, now);
    let second = reminder(user, 2, now);
    let theirs = reminder(fresh_user(), 1, now);
    ledger
        .notified(&[first.clone(), theirs.clone()], now)
        .await
        .unwrap();
    let later = now + chrono::Duration::seconds(5);
    ledger
        .notified(&[second.clone(), first.clone()], later)
        .await
        .unwrap();
    ledger.notified(&[], later).await.unwrap();
    let list = ledger.recent(user, 10).await.unwrap();
    let keys: Vec<_> = list.iter().map(|n| n.key).collect();
    assert_eq!(keys, vec![second.key, first.key]);
    assert_eq!(list[1].title, first.title);
    assert_eq!(list[1].body, first.body);
    assert_eq!(
        list[1].delivered_at.timestamp_millis(),
        now.timestamp_millis(),
        "the first report counts"
    );
    assert_eq!(ledger.recent(user, 1).await.unwrap().len(), 1);
    assert_eq!(ledger.recent(theirs.key.user, 10).await.unwrap().len(), 1);
    assert!(ledger.recent(fresh_user(), 10).await.unwrap().is_empty());
}
