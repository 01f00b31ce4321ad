//! Creating and changing festivals: the catalog entry, its ticket stock, its waiting room's
//! opening (when the sale opens later), and the search cache, together.

use festival_catalog::{CatalogError, Festival, FestivalChanges, NewFestival};
use ticket_lock::{Inventory, NewInventory, TicketEngine, TicketError};
use waiting_queue::QueueError;

use crate::festivals::{Festivals, invalidate_search};
use crate::queues::{Queues, festival_queue};

/// Why a festival could not be created or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FestivalError {
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The ticket engine refused or failed.
    #[error(transparent)]
    Tickets(#[from] TicketError),
    /// The waiting room refused (an opening that took effect cannot move) or failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Creates a festival with its stock (`stock.festival` is filled in) and, when its sale opens
/// later and is queued, its waiting room's opening. Everything is checked before anything is
/// stored.
pub async fn create(
    festivals: &Festivals,
    tickets: &dyn TicketEngine,
    queues: &Queues,
    mut new: NewFestival,
    mut stock: NewInventory,
) -> Result<(Festival, Inventory), FestivalError> {
    new.validate()?;
    stock.validate()?;
    let festival = festivals.catalog.create(new).await?;
    stock.festival = ticket_lock::FestivalId(festival.id);
    // The festival exists now; its stock and opening follow (doing either again is harmless).
    let inventory = tickets.create_inventory(stock).await?;
    // A new festival's waiting room has no opening to clear: only a queued sale asks the queue
    // (so creating a festival does not need Redis).
    if let Some(at) = festival.sale.opens_at.filter(|_| festival.sale.queued) {
        queues
            .engine()
            .schedule(&festival_queue(festival.id), Some(at))
            .await?;
    }
    invalidate_search(festivals).await;
    Ok((festival, inventory))
}

/// Creates festivals in bulk (the generator), each with the stock `stock_of` gives it.
pub async fn create_many(
    festivals: &Festivals,
    tickets: &dyn TicketEngine,
    queues: &Queues,
    new: Vec<NewFestival>,
    stock_of: impl Fn(&Festival) -> NewInventory,
) -> Result<Vec<Festival>, FestivalError> {
    let created = festivals.catalog.create_many(new).await?;
    for festival in &created {
        tickets.create_inventory(stock_of(festival)).await?;
        schedule(queues, festival).await?;
    }
    invalidate_search(festivals).await;
    Ok(created)
}

/// Changes a festival. A new sale opening moves its waiting room's opening, unless that took
/// effect already (refused before anything changes).
pub async fn update(
    festivals: &Festivals,
    queues: &Queues,
    id: i64,
    mut changes: FestivalChanges,
) -> Result<Festival, FestivalError> {
    changes.validate()?;
    if let Some(sale) = changes.sale {
        let before = festivals.catalog.get(id).await?;
        let stats = queues.engine().stats(&festival_queue(id)).await?;
        if sale.opens_at != before.sale.opens_at
            && let Some(opened) = stats.opened_at
            && sale.opens_at.is_none_or(|at| at > opened)
        {
            return Err(QueueError::Invalid {
                field: "saleOpensAt",
                reason: "the waiting room opened already".into(),
            }
            .into());
        }
    }
    let festival = festivals.catalog.update(id, changes).await?;
    schedule(queues, &festival).await?;
    invalidate_search(festivals).await;
    Ok(festival)
}

/// A queued sale that opens later gets its waiting room's opening: people who come before wait
/// in the pre-queue and are put in a random order at the opening.
async fn schedule(queues: &Queues, festival: &Festival) -> Result<(), QueueError> {
    let queue = festival_queue(festival.id);
    match festival.sale.opens_at {
        Some(at) if festival.sale.queued => queues.engine().schedule(&queue, Some(at)).await,
        // An opening that was set before and removed now: open at once.
        _ if queues.engine().stats(&queue).await?.opens_at.is_some() => {
            queues.engine().schedule(&queue, None).await
        }
        _ => Ok(()),
    }
}
