//! Realistic festival data for load tests and demos: Korean and English names, places and
//! descriptions, reproducible from a seed (`somsom-server generate-festivals`).

use chrono::{Days, NaiveDate};
use festival_catalog::NewFestival;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const CITIES: &[(&str, &str)] = &[
    ("서울", "Seoul"),
    ("부산", "Busan"),
    ("대구", "Daegu"),
    ("인천", "Incheon"),
    ("광주", "Gwangju"),
    ("대전", "Daejeon"),
    ("울산", "Ulsan"),
    ("수원", "Suwon"),
    ("전주", "Jeonju"),
    ("경주", "Gyeongju"),
    ("강릉", "Gangneung"),
    ("제주", "Jeju"),
    ("여수", "Yeosu"),
    ("춘천", "Chuncheon"),
    ("안동", "Andong"),
    ("진해", "Jinhae"),
    ("보령", "Boryeong"),
    ("통영", "Tongyeong"),
    ("담양", "Damyang"),
    ("평창", "Pyeongchang"),
];

const THEMES: &[(&str, &str)] = &[
    ("불꽃", "Fireworks"),
    ("벚꽃", "Cherry Blossom"),
    ("머드", "Mud"),
    ("재즈", "Jazz"),
    ("록", "Rock"),
    ("빛", "Light"),
    ("등불", "Lantern"),
    ("먹거리", "Food"),
    ("맥주", "Beer"),
    ("와인", "Wine"),
    ("국악", "Gugak"),
    ("한복", "Hanbok"),
    ("야시장", "Night Market"),
    ("드론", "Drone Show"),
    ("커피", "Coffee"),
    ("김치", "Kimchi"),
    ("단풍", "Autumn Leaves"),
    ("눈꽃", "Snow"),
    ("바다", "Sea"),
    ("영화", "Film"),
    ("탈춤", "Mask Dance"),
    ("비빔밥", "Bibimbap"),
];

const KINDS: &[&str] = &["축제", "페스티벌", "문화제", "대축제", "한마당"];

const PLACES: &[&str] = &[
    "한강공원",
    "해수욕장",
    "시민광장",
    "올림픽공원",
    "문화예술회관",
    "전통시장",
    "호수공원",
    "항구 일대",
    "구도심 거리",
    "종합운동장",
];

const ACTIVITIES: &[&str] = &[
    "야간 불꽃쇼",
    "버스킹 공연",
    "지역 특산물 장터",
    "어린이 체험 부스",
    "전통 공연",
    "푸드트럭",
    "드론 라이트쇼",
    "플리마켓",
    "DJ 파티",
    "포토존",
    "소원 등 달기",
    "퍼레이드",
];

const ENGLISH_LINES: &[&str] = &[
    "Live music every night.",
    "Free entry for children under 7.",
    "Street food from all over Korea.",
    "Bring a blanket for the evening show.",
    "Shuttle buses run from the main station.",
];

/// `count` festivals from `seed`: the same arguments give the same festivals.
pub fn festivals(seed: u64, count: usize) -> Vec<NewFestival> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|i| festival(&mut rng, i)).collect()
}

fn festival(rng: &mut StdRng, index: usize) -> NewFestival {
    let (city_ko, city_en) = *CITIES.choose(rng).expect("non-empty");
    let (theme_ko, theme_en) = *THEMES.choose(rng).expect("non-empty");
    let year = 2027 + (index % 3) as i32;
    let edition = rng.gen_range(1..=40);
    let english = rng.gen_bool(0.25);
    let name = if english {
        format!("{city_en} {theme_en} Festival {year}")
    } else {
        let kind = KINDS.choose(rng).expect("non-empty");
        format!("제{edition}회 {city_ko} {theme_ko} {kind}")
    };
    let place = PLACES.choose(rng).expect("non-empty");
    let mut activities: Vec<&str> = ACTIVITIES.choose_multiple(rng, 3).copied().collect();
    activities.sort_unstable();
    let mut description = format!(
        "{city_ko} {place}에서 열리는 {theme_ko} 축제입니다. {}, {}, {}까지 즐길 거리가 가득합니다.",
        activities[0], activities[1], activities[2]
    );
    if english || rng.gen_bool(0.3) {
        description.push(' ');
        description.push_str(ENGLISH_LINES.choose(rng).expect("non-empty"));
    }
    let start =
        NaiveDate::from_ymd_opt(year, 1, 1).expect("valid date") + Days::new(rng.gen_range(0..360));
    let end = start + Days::new(rng.gen_range(0..=3));
    NewFestival {
        name,
        description,
        location: Some(format!("{city_ko} {place}")),
        start_date: start,
        end_date: end,
        sale: festival_catalog::Sale::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_festivals_are_valid_varied_and_reproducible() {
        let a = festivals(7, 500);
        assert_eq!(a, festivals(7, 500));
        assert_ne!(a, festivals(8, 500));
        let mut names = std::collections::HashSet::new();
        for mut f in a {
            f.validate().unwrap();
            names.insert(f.name.clone());
        }
        assert!(names.len() > 400, "{} distinct names", names.len());
    }
}
