//! Selling a festival day's tickets from a SQLite file with `ticket-lock`, nothing else from
//! SomSom: 300 buyers race for 100 tickets, a buyer whose answer was lost retries with the same
//! idempotency key and gets the same reservation, a cancellation puts tickets back, and the
//! stock read back at the end matches the reservations exactly.
//!
//! ```sh
//! cargo run -p somsom-examples --example ticket_sale
//! ```

#![expect(clippy::print_stdout, reason = "what this example prints is its point")]

use std::sync::Arc;

use chrono::NaiveDate;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use ticket_lock::sql::{SqlPool, SqlTickets, Strategy};
use ticket_lock::{
    Booking, FestivalId, NewInventory, ReservationId, Rules, TicketEngine, TicketError, UserId,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::temp_dir().join(format!("ticket-sale-{}.db", std::process::id()));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        )
        .await?;
    // Group commit books a day's concurrent requests in one transaction: one fsync per group.
    let tickets = Arc::new(SqlTickets::new(
        SqlPool::Sqlite(pool),
        Strategy::GroupCommit,
    ));
    tickets.migrate().await?;

    let day = NaiveDate::from_ymd_opt(2099, 10, 2).expect("a date");
    tickets
        .create_inventory(NewInventory {
            festival: FestivalId(1),
            days: vec![(day, 100)],
            rules: Rules {
                max_per_reservation: 2,
                max_per_user_per_day: 2,
            },
        })
        .await?;

    // 300 buyers, one ticket each, all at once.
    let buyers = (1..=300).map(|user| {
        let tickets = tickets.clone();
        tokio::spawn(async move {
            let booking = Booking {
                user: UserId(user),
                festival: FestivalId(1),
                date: day,
                quantity: 1,
                idempotency_key: Some(format!("checkout-{user}")),
            };
            tickets.reserve(booking).await
        })
    });
    let (mut sold, mut sold_out) = (0, 0);
    for result in futures::future::join_all(buyers).await {
        match result? {
            Ok(_) => sold += 1,
            Err(TicketError::SoldOut { .. }) => sold_out += 1,
            Err(other) => return Err(other.into()),
        }
    }
    println!("{sold} buyers got a ticket, {sold_out} were told it is sold out");

    // Buyer 1's answer was lost on the way: the retry with the same key books nothing new.
    let retry = tickets
        .reserve(Booking {
            user: UserId(1),
            festival: FestivalId(1),
            date: day,
            quantity: 1,
            idempotency_key: Some("checkout-1".into()),
        })
        .await;
    match retry {
        Ok(booked) => println!(
            "buyer 1's retry: reservation {} again (replayed: {})",
            booked.reservation.id, booked.replayed
        ),
        // Buyer 1 was among those told it is sold out: the retry is told the same.
        Err(e) => println!("buyer 1's retry: {e}"),
    }

    // Someone cancels: the ticket goes back on sale.
    let holder = tickets
        .active_from(day, ReservationId(0), 1)
        .await?
        .into_iter()
        .next()
        .expect("somebody holds a ticket");
    tickets.cancel(holder.user, holder.id).await?;
    let left = tickets.inventory(FestivalId(1)).await?.days[0].left;
    println!("after user {}'s cancellation: {left} left", holder.user);

    assert_eq!(sold, 100, "exactly the stock was sold");
    assert_eq!(left, 1);
    std::fs::remove_file(&file).ok();
    Ok(())
}
