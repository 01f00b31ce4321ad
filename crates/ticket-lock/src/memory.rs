//! The in-memory engine: one lock around everything, so every rule holds trivially. One process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{FixedOffset, NaiveDate};
use engine_clock::{Clock, SystemClock};

use crate::model::{check, from_millis, millis, today};
use crate::{
    Booked, Booking, DayStock, FestivalId, Inventory, NewInventory, Reservation, ReservationId,
    ReservationPage, Rules, Status, TicketEngine, TicketError, UserId, Window,
};

#[derive(Debug, Default)]
struct State {
    inventories: HashMap<FestivalId, (Rules, BTreeMap<NaiveDate, DayStock>)>,
    reservations: BTreeMap<ReservationId, Reservation>,
    keys: HashMap<(UserId, String), ReservationId>,
    /// Active tickets per user and festival day, kept with every change (no scan per booking).
    held: HashMap<(UserId, FestivalId, NaiveDate), u32>,
    next_id: ReservationId,
}

/// Tickets in memory.
#[derive(Debug, Clone)]
pub struct MemoryTickets {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    offset: FixedOffset,
}

impl Default for MemoryTickets {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTickets {
    /// An empty engine on the system clock; days end at midnight UTC unless
    /// [`with_day_offset`](Self::with_day_offset) says otherwise.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            clock: Arc::new(SystemClock),
            offset: FixedOffset::east_opt(0).expect("UTC"),
        }
    }

    /// Reads the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Days end at midnight in `offset`, e.g. [`crate::kst`].
    #[must_use]
    pub fn with_day_offset(mut self, offset: FixedOffset) -> Self {
        self.offset = offset;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn held(state: &State, user: UserId, festival: FestivalId, date: NaiveDate) -> u32 {
    state
        .held
        .get(&(user, festival, date))
        .copied()
        .unwrap_or(0)
}

#[async_trait]
impl TicketEngine for MemoryTickets {
    async fn create_inventory(&self, new: NewInventory) -> Result<Inventory, TicketError> {
        new.validate()?;
        {
            let mut state = self.lock();
            state.inventories.entry(new.festival).or_insert_with(|| {
                let days = new
                    .days
                    .iter()
                    .map(|&(date, total)| {
                        (
                            date,
                            DayStock {
                                date,
                                total,
                                left: total,
                            },
                        )
                    })
                    .collect();
                (new.rules, days)
            });
        }
        self.inventory(new.festival).await
    }

    async fn inventory(&self, festival: FestivalId) -> Result<Inventory, TicketError> {
        let state = self.lock();
        let (rules, days) = state
            .inventories
            .get(&festival)
            .ok_or(TicketError::NotFound)?;
        Ok(Inventory {
            festival,
            rules: *rules,
            days: days.values().copied().collect(),
        })
    }

    async fn reservation_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Reservation>, TicketError> {
        let state = self.lock();
        Ok(state
            .keys
            .get(&(user, key.to_owned()))
            .map(|id| state.reservations[id].clone()))
    }

    async fn reserve(&self, booking: Booking) -> Result<Booked, TicketError> {
        booking.validate()?;
        let now = from_millis(millis(self.clock.now()));
        let mut state = self.lock();
        if let Some(key) = &booking.idempotency_key
            && let Some(id) = state.keys.get(&(booking.user, key.clone()))
        {
            let earlier = state.reservations[id].clone();
            if !booking.same_as(&earlier) {
                return Err(TicketError::KeyReused);
            }
            return Ok(Booked {
                reservation: earlier,
                replayed: true,
            });
        }
        let (rules, left) = {
            let (rules, days) = state
                .inventories
                .get(&booking.festival)
                .ok_or(TicketError::NotFound)?;
            let day = days.get(&booking.date).ok_or(TicketError::NotFound)?;
            (*rules, day.left)
        };
        let held = held(&state, booking.user, booking.festival, booking.date);
        check(&booking, rules, left, held, today(now, self.offset))?;
        if let Some((_, days)) = state.inventories.get_mut(&booking.festival)
            && let Some(day) = days.get_mut(&booking.date)
        {
            day.left -= booking.quantity;
        }
        *state
            .held
            .entry((booking.user, booking.festival, booking.date))
            .or_insert(0) += booking.quantity;
        state.next_id.0 += 1;
        let reservation = Reservation {
            id: state.next_id,
            user: booking.user,
            festival: booking.festival,
            date: booking.date,
            quantity: booking.quantity,
            status: Status::Active,
            created_at: now,
            cancelled_at: None,
        };
        state
            .reservations
            .insert(reservation.id, reservation.clone());
        if let Some(key) = booking.idempotency_key {
            state.keys.insert((booking.user, key), reservation.id);
        }
        Ok(Booked {
            reservation,
            replayed: false,
        })
    }

    async fn cancel(&self, user: UserId, id: ReservationId) -> Result<Reservation, TicketError> {
        let now = from_millis(millis(self.clock.now()));
        let mut state = self.lock();
        let reservation = state
            .reservations
            .get(&id)
            .filter(|r| r.user == user)
            .cloned()
            .ok_or(TicketError::ReservationNotFound)?;
        if reservation.status == Status::Cancelled {
            return Err(TicketError::AlreadyProcessed);
        }
        if reservation.date < today(now, self.offset) {
            return Err(TicketError::DayClosed);
        }
        if let Some((_, days)) = state.inventories.get_mut(&reservation.festival)
            && let Some(day) = days.get_mut(&reservation.date)
        {
            day.left += reservation.quantity;
        }
        if let Some(held) =
            state
                .held
                .get_mut(&(reservation.user, reservation.festival, reservation.date))
        {
            *held = held.saturating_sub(reservation.quantity);
        }
        let stored = state
            .reservations
            .get_mut(&id)
            .ok_or(TicketError::ReservationNotFound)?;
        stored.status = Status::Cancelled;
        stored.cancelled_at = Some(now);
        Ok(stored.clone())
    }

    async fn reservation(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation, TicketError> {
        self.lock()
            .reservations
            .get(&id)
            .filter(|r| r.user == user)
            .cloned()
            .ok_or(TicketError::ReservationNotFound)
    }

    async fn held(
        &self,
        user: UserId,
        festival: FestivalId,
        date: NaiveDate,
    ) -> Result<u32, TicketError> {
        Ok(held(&self.lock(), user, festival, date))
    }

    async fn reservation_by_id(&self, id: ReservationId) -> Result<Reservation, TicketError> {
        self.lock()
            .reservations
            .get(&id)
            .cloned()
            .ok_or(TicketError::ReservationNotFound)
    }

    async fn day_reservations(
        &self,
        festival: FestivalId,
        date: NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError> {
        Ok(self
            .lock()
            .reservations
            .range(ReservationId(after.0.saturating_add(1))..)
            .map(|(_, r)| r)
            .filter(|r| r.festival == festival && r.date == date)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn active_from(
        &self,
        from: NaiveDate,
        after: ReservationId,
        limit: u32,
    ) -> Result<Vec<Reservation>, TicketError> {
        Ok(self
            .lock()
            .reservations
            .range(ReservationId(after.0.saturating_add(1))..)
            .map(|(_, r)| r)
            .filter(|r| r.status == Status::Active && r.date >= from)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn reservations(
        &self,
        user: UserId,
        window: Window,
    ) -> Result<ReservationPage, TicketError> {
        let state = self.lock();
        let rows = state
            .reservations
            .range(..window.bound())
            .rev()
            .map(|(_, r)| r)
            .filter(|r| r.user == user)
            .take(window.limit as usize + 1)
            .cloned()
            .collect();
        Ok(window.page(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::run_all;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_tickets_pass_the_conformance_suite() {
        run_all(&|clock| {
            Box::pin(async move {
                Arc::new(
                    MemoryTickets::new()
                        .with_clock(clock)
                        .with_day_offset(crate::kst()),
                ) as Arc<dyn TicketEngine>
            })
        })
        .await;
    }
}
