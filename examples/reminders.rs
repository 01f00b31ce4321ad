//! "Your event is tomorrow" reminders with `push-notify`, nothing else from SomSom: plan one
//! reminder per (user, event, day), at most once each, cancel it when the booking is cancelled,
//! and deliver due reminders to every device of the user through a sender of your own (here one
//! that prints, and fails once to show the retry). A simulated clock runs a week in a moment.
//!
//! ```sh
//! cargo run -p somsom-examples --example reminders
//! ```

#![expect(clippy::print_stdout, reason = "what this example prints is its point")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use push_notify::send::{Message, SendOutcome, Sender};
use push_notify::{
    Clock, Device, DeviceRegistry, DeviceType, Dispatcher, ManualClock, MemoryLedger,
    MemoryRegistry, MemorySchedule, Planner, ReminderKey, Scheduler,
};

/// Your provider goes here (e-mail, SMS, a chat bot…). This one prints, and its first send fails
/// the way a provider's rate limit would.
#[derive(Debug, Default)]
struct Printer {
    failed_once: AtomicBool,
}

#[async_trait]
impl Sender for Printer {
    async fn send(&self, device: &Device, message: &Message) -> SendOutcome {
        if !self.failed_once.swap(true, Ordering::Relaxed) {
            return SendOutcome::Retry {
                after: None,
                reason: "429 from the provider".into(),
            };
        }
        println!(
            "  -> user {} on {}: {} — {}",
            device.user,
            device.device_type.as_str(),
            message.title,
            message.body
        );
        SendOutcome::Delivered
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new("2027-05-01T00:00:00Z".parse()?);
    let schedule = Arc::new(MemorySchedule::new().with_clock(Arc::new(clock.clone())));
    let registry = Arc::new(MemoryRegistry::new());
    for (user, token, device_type) in [
        (1, "ana-phone", DeviceType::Mobile),
        (1, "ana-laptop", DeviceType::Web),
        (2, "bo-phone", DeviceType::Mobile),
    ] {
        registry
            .activate(Device {
                user,
                token: token.into(),
                device_type,
            })
            .await?;
    }

    // Remind at 09:00 Seoul time the day before (the default); any time and zone will do.
    let planner = Planner::parse("09:00", "Asia/Seoul")?;
    let day = "2027-05-05".parse()?;
    for user in [1, 2] {
        let key = ReminderKey {
            user,
            festival: 10,
            date: day,
        };
        let reminder = planner
            .reminder(key, "Children's Day Parade", clock.now())
            .expect("the day is ahead");
        // Booking twice plans once: the key is the reminder's identity.
        schedule.schedule(&reminder).await?;
        schedule.schedule(&reminder).await?;
    }
    // Bo cancels their tickets: no reminder for them.
    schedule
        .cancel(&ReminderKey {
            user: 2,
            festival: 10,
            date: day,
        })
        .await?;

    let dispatcher = Dispatcher::new(
        schedule,
        registry,
        Arc::new(MemoryLedger::new()),
        Arc::new(Printer::default()),
    )
    .with_clock(Arc::new(clock.clone()));
    let mut sent = 0;
    for _hour in 0..24 * 7 {
        let round = dispatcher.round().await?;
        if round.claimed > 0 {
            println!(
                "{}: {} due, {} sent, {} to retry",
                clock.now(),
                round.claimed,
                round.sends,
                round.retried
            );
        }
        sent += round.sends;
        clock.advance(chrono::Duration::hours(1));
    }
    println!("a week later: {sent} notifications sent (Ana's two devices; Bo cancelled)");
    assert_eq!(sent, 2);
    Ok(())
}
