//! The checks every [`Catalog`] backend passes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::NaiveDate;
use engine_clock::{Clock, ManualClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::memory::matches;
use crate::{Catalog, CatalogError, FestivalChanges, Keyword, NewFestival, PageRequest};

/// Makes an empty catalog that reads the time from the given clock.
pub type Factory =
    dyn Fn(Arc<dyn Clock>) -> Pin<Box<dyn Future<Output = Arc<dyn Catalog>> + Send>> + Sync;

/// Runs every check, each on a fresh catalog from `factory`.
pub async fn run_all(factory: &Factory) {
    let clock = ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-29T09:00:00.123456Z")
            .unwrap()
            .to_utc(),
    );
    let catalog = factory(Arc::new(clock.clone())).await;
    create_get_and_validate(&*catalog, &clock).await;
    update_changes_what_search_sees(&*catalog, &clock).await;

    let catalog = factory(Arc::new(clock.clone())).await;
    cursor_paging_newest_first(&*catalog).await;

    let catalog = factory(Arc::new(clock.clone())).await;
    search_matches_substrings_literally(&*catalog).await;

    let catalog = factory(Arc::new(clock.clone())).await;
    concurrent_creates_get_distinct_ids(catalog).await;

    let catalog = factory(Arc::new(clock)).await;
    search_equals_the_plain_definition_on_random_data(&*catalog, 0x504d_504d).await;
    sales_are_kept_and_changed_whole(&*catalog).await;
}

/// A festival's sale is stored, read back, listed and changed; one that closes before it opens
/// is refused.
pub async fn sales_are_kept_and_changed_whole(catalog: &dyn Catalog) {
    let opens = chrono::DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
    let sale = crate::Sale {
        opens_at: Some(opens),
        closes_at: Some(opens + chrono::TimeDelta::days(3)),
        queued: false,
    };
    let created = catalog
        .create(NewFestival {
            sale,
            ..festival("판매 일정", "sale")
        })
        .await
        .unwrap();
    assert_eq!(created.sale, sale);
    assert_eq!(catalog.get(created.id).await.unwrap().sale, sale);
    let plain = crate::Sale::default();
    let changed = catalog
        .update(
            created.id,
            FestivalChanges {
                sale: Some(plain),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.sale, plain);
    assert_eq!(catalog.get(created.id).await.unwrap().sale, plain);
    let backwards = crate::Sale {
        opens_at: Some(opens),
        closes_at: Some(opens),
        queued: true,
    };
    let refused = catalog
        .create(NewFestival {
            sale: backwards,
            ..festival("거꾸로", "sale")
        })
        .await;
    assert!(
        matches!(
            refused,
            Err(CatalogError::Invalid {
                field: "saleClosesAt",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        crate::Sale::default().state(opens),
        crate::SaleState::OnSale
    );
    assert_eq!(
        sale.state(opens - chrono::TimeDelta::seconds(1)),
        crate::SaleState::Upcoming
    );
    assert_eq!(
        sale.state(opens + chrono::TimeDelta::days(3)),
        crate::SaleState::Closed
    );
}

/// A festival with the given name and description, on 10–12 January 2027.
pub fn festival(name: &str, description: &str) -> NewFestival {
    NewFestival {
        name: name.to_owned(),
        description: description.to_owned(),
        location: None,
        start_date: date(2027, 1, 10),
        end_date: date(2027, 1, 12),
        sale: crate::Sale::default(),
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn invalid_field<T: std::fmt::Debug>(result: Result<T, CatalogError>) -> &'static str {
    match result {
        Err(CatalogError::Invalid { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// What is created reads back exactly (Korean, emoji, trimming, millisecond times); every rule
/// names its field; unknown ids are `NotFound`.
pub async fn create_get_and_validate(catalog: &dyn Catalog, clock: &ManualClock) {
    let name = "가".repeat(99) + "😀";
    let mut new = festival(&format!("  {name} "), "불꽃이 터지는 밤 🎆\n두 번째 줄");
    new.location = Some(" 서울 여의도 ".into());
    let created = catalog.create(new).await.unwrap();
    assert!(created.id > 0);
    assert_eq!(created.name, name, "trimmed, 100 characters kept");
    assert_eq!(created.location.as_deref(), Some("서울 여의도"));
    assert_eq!(
        created.created_at.timestamp_millis(),
        clock.now().timestamp_millis()
    );
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(created.days().count(), 3);
    assert_eq!(catalog.get(created.id).await.unwrap(), created);
    assert!(matches!(
        catalog.get(created.id + 1000).await,
        Err(CatalogError::NotFound(id)) if id == created.id + 1000
    ));

    let long_description = festival("ok", &"설".repeat(2_000));
    catalog.create(long_description).await.unwrap();

    let cases: Vec<(NewFestival, &str)> = vec![
        (festival("   ", "d"), "name"),
        (festival(&"a".repeat(101), "d"), "name"),
        (festival("a\u{7}b", "d"), "name"),
        (festival("n", &"d".repeat(2_001)), "description"),
        (
            NewFestival {
                location: Some("l".repeat(101)),
                ..festival("n", "d")
            },
            "location",
        ),
        (
            NewFestival {
                end_date: date(2027, 1, 9),
                ..festival("n", "d")
            },
            "endDate",
        ),
        (
            NewFestival {
                end_date: date(2028, 1, 11),
                ..festival("n", "d")
            },
            "endDate",
        ),
    ];
    let before = catalog.count().await.unwrap();
    for (new, field) in cases {
        assert_eq!(invalid_field(catalog.create(new).await), field);
    }
    assert_eq!(
        catalog.count().await.unwrap(),
        before,
        "nothing invalid was stored"
    );
}

/// Changing a name moves it in search and `updated_at`, not `created_at`.
pub async fn update_changes_what_search_sees(catalog: &dyn Catalog, clock: &ManualClock) {
    let created = catalog
        .create(festival("진해 군항제", "벚꽃 구경"))
        .await
        .unwrap();
    clock.advance(chrono::Duration::minutes(5));
    let changes = FestivalChanges {
        name: Some("진해 벚꽃 군항제 2027".into()),
        location: Some(Some("창원".into())),
        ..FestivalChanges::default()
    };
    let updated = catalog.update(created.id, changes).await.unwrap();
    assert_eq!(updated.name, "진해 벚꽃 군항제 2027");
    assert_eq!(updated.description, "벚꽃 구경");
    assert_eq!(updated.location.as_deref(), Some("창원"));
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        updated.updated_at - created.updated_at,
        chrono::Duration::minutes(5)
    );
    assert_eq!(catalog.get(created.id).await.unwrap(), updated);

    let page = PageRequest::first(100).unwrap();
    let found = catalog
        .search(&Keyword::parse("2027").unwrap(), page)
        .await
        .unwrap();
    assert_eq!(
        found.festivals.iter().map(|f| f.id).collect::<Vec<_>>(),
        [created.id]
    );
    let renamed_away = catalog
        .update(
            created.id,
            FestivalChanges {
                name: Some("창원 축제".into()),
                ..FestivalChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed_away.name, "창원 축제");
    let gone = catalog
        .search(&Keyword::parse("2027").unwrap(), page)
        .await
        .unwrap();
    assert!(gone.festivals.is_empty(), "the old name no longer matches");
    let removed = catalog
        .update(
            created.id,
            FestivalChanges {
                location: Some(None),
                ..FestivalChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.location, None);

    let too_long = FestivalChanges {
        description: Some("x".repeat(2_001)),
        ..FestivalChanges::default()
    };
    assert_eq!(
        invalid_field(catalog.update(created.id, too_long).await),
        "description"
    );
    assert!(matches!(
        catalog
            .update(created.id + 1000, FestivalChanges::default())
            .await,
        Err(CatalogError::NotFound(_))
    ));
}

/// The seed's cursor: `limit + 1` rows tell `has_next`; `last_id` is set only when it is true.
pub async fn cursor_paging_newest_first(catalog: &dyn Catalog) {
    let created = catalog
        .create_many(
            (1..=25)
                .map(|i| festival(&format!("축제 {i}"), "d"))
                .collect(),
        )
        .await
        .unwrap();
    let ids: Vec<i64> = created.iter().map(|f| f.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in creation order"
    );
    assert_eq!(catalog.count().await.unwrap(), 25);

    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = catalog
            .list(PageRequest::new(cursor, 10).unwrap())
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.festivals.iter().map(|f| f.id));
        assert_eq!(page.has_next, page.last_id.is_some());
        match page.last_id {
            Some(last) => {
                assert_eq!(page.festivals.len(), 10);
                assert_eq!(Some(&last), seen.last());
                cursor = last;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // A page that ends exactly at the last festival says there is no next one.
    let exact = catalog
        .list(PageRequest::new(ids[5], 5).unwrap())
        .await
        .unwrap();
    assert_eq!(exact.festivals.len(), 5);
    assert!(!exact.has_next);
    assert_eq!(exact.last_id, None);

    assert!(matches!(
        catalog
            .list(PageRequest::new(ids[24] + 99, 10).unwrap())
            .await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(invalid_field(PageRequest::new(0, 0)), "limit");
    assert_eq!(invalid_field(PageRequest::new(0, 101)), "limit");
    assert_eq!(invalid_field(PageRequest::new(-1, 10)), "lastId");
}

/// Korean substrings of one syllable or more, case-insensitive Latin, `%` and `_` literally,
/// description matches, and paging over results.
pub async fn search_matches_substrings_literally(catalog: &dyn Catalog) {
    let data = [
        ("여의도 불꽃축제", "서울의 가을 밤하늘"),        // 0
        ("Seoul Lantern Festival", "청계천 등 축제"),     // 1
        ("부산 바다축제", "해운대에서 열리는 여름 축제"), // 2
        ("할인 100% 이벤트", "선착순"),                   // 3
        ("1000명 합창", "누구나"),                        // 4
        ("snake_case meetup", "for a_b fans"),            // 5
        ("snakeXcase party", "aXb"),                      // 6
        ("Jazz Night", "재즈와 맥주, 불꽃놀이 없음"),     // 7
        ("MUSIC FEST", "ÉTÉ en Seoul"),                   // 8
    ];
    let created = catalog
        .create_many(data.iter().map(|(n, d)| festival(n, d)).collect())
        .await
        .unwrap();
    let id = |i: usize| created[i].id;
    let all = PageRequest::first(100).unwrap();
    let search = |k: &'static str| async move {
        let page = catalog
            .search(&Keyword::parse(k).unwrap(), all)
            .await
            .unwrap();
        assert!(!page.has_next);
        page.festivals.iter().map(|f| f.id).collect::<Vec<_>>()
    };
    assert_eq!(search("축제").await, [id(2), id(1), id(0)]);
    assert_eq!(search("불꽃").await, [id(7), id(0)]);
    assert_eq!(search("서울").await, [id(0)]);
    assert_eq!(search("꽃").await, [id(7), id(0)]);
    assert_eq!(search("SEOUL").await, [id(8), id(1)]);
    assert_eq!(search("seoul lantern").await, [id(1)]);
    assert_eq!(search("été").await, [id(8)]);
    assert_eq!(search("100%").await, [id(3)]);
    assert_eq!(search("%").await, [id(3)]);
    assert_eq!(search("e_c").await, [id(5)]);
    assert_eq!(search("a_b").await, [id(5)]);
    assert_eq!(search("_").await, [id(5)]);
    assert_eq!(search("해운대").await, [id(2)]);
    assert_eq!(search("  jazz ").await, [id(7)]);
    assert_eq!(search("없는축제").await, Vec::<i64>::new());
    assert_eq!(search("z").await, [id(7)]);

    // Paging over search results with the cursor.
    let first = catalog
        .search(
            &Keyword::parse("축제").unwrap(),
            PageRequest::first(2).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        first.festivals.iter().map(|f| f.id).collect::<Vec<_>>(),
        [id(2), id(1)]
    );
    assert_eq!(first.last_id, Some(id(1)));
    let second = catalog
        .search(
            &Keyword::parse("축제").unwrap(),
            PageRequest::new(id(1), 2).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        second.festivals.iter().map(|f| f.id).collect::<Vec<_>>(),
        [id(0)]
    );
    assert!(!second.has_next);
}

/// Creates from many tasks at once all succeed with distinct ids.
pub async fn concurrent_creates_get_distinct_ids(catalog: Arc<dyn Catalog>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let catalog = catalog.clone();
        tasks.spawn(async move {
            catalog
                .create(festival(&format!("동시 축제 {i}"), "같은 글자 축제 불꽃"))
                .await
                .unwrap()
                .id
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    let found = catalog
        .search(
            &Keyword::parse("같은 글자").unwrap(),
            PageRequest::first(100).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(found.festivals.len(), 40);
}

/// Any backend's search (however it is indexed) returns exactly what the plain definition
/// (name or description contains the folded keyword) gives, page by page.
pub async fn search_equals_the_plain_definition_on_random_data(catalog: &dyn Catalog, seed: u64) {
    const ALPHABET: &[&str] = &[
        "축", "제", "불", "꽃", "서", "울", "a", "A", "b", "B", "%", "_", " ", "é", "É", "1",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let text = |rng: &mut StdRng, max: usize| -> String {
        let len = rng.gen_range(1..=max);
        (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect()
    };
    let festivals: Vec<NewFestival> = (0..300)
        .map(|_| {
            let name = text(&mut rng, 12);
            let description = text(&mut rng, 30);
            festival(&format!("x{name}"), &description)
        })
        .collect();
    catalog.create_many(festivals).await.unwrap();
    let everything = {
        let mut all = Vec::new();
        let mut cursor = 0;
        loop {
            let page = catalog
                .list(PageRequest::new(cursor, 100).unwrap())
                .await
                .unwrap();
            all.extend(page.festivals);
            match page.last_id {
                Some(last) => cursor = last,
                None => break all,
            }
        }
    };
    for _ in 0..150 {
        let raw = text(&mut rng, 4);
        let Ok(keyword) = Keyword::parse(&raw) else {
            continue;
        };
        let expected: Vec<i64> = everything
            .iter()
            .filter(|f| matches(f, &keyword))
            .map(|f| f.id)
            .collect();
        let limit = rng.gen_range(1..=40);
        let mut got = Vec::new();
        let mut cursor = 0;
        loop {
            let page = catalog
                .search(&keyword, PageRequest::new(cursor, limit).unwrap())
                .await
                .unwrap();
            got.extend(page.festivals.iter().map(|f| f.id));
            match page.last_id {
                Some(last) => cursor = last,
                None => break,
            }
        }
        assert_eq!(
            got,
            expected,
            "keyword {:?}, limit {limit}",
            keyword.as_str()
        );
    }
}
