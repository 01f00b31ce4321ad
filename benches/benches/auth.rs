//! Identity costs: `cargo bench -p somsom-benches --bench auth`.
//!
//! * `verify_access_token`: RS256 signature, claims and session check of one access token by the
//!   local provider over the memory store (what every authenticated request pays);
//! * `argon2id_hash` / `argon2id_verify`: the password hash at the parameters SomSom uses
//!   (m = 19 MiB, t = 2, p = 1) — the CPU time one sign-up or login costs.

use std::hint::black_box;
use std::sync::Arc;

use cognito_auth::local::{LocalConfig, LocalIdentity, MemoryStore};
use cognito_auth::sender::MemorySender;
use cognito_auth::{IdentityProvider, SignUp, SystemClock};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codes = Arc::new(MemorySender::new());
    let (provider, token) = runtime.block_on(async {
        let provider = LocalIdentity::new(
            Arc::new(MemoryStore::new()),
            codes.clone(),
            Arc::new(SystemClock),
            LocalConfig::default(),
        )
        .await
        .unwrap();
        let email = "bench@example.com";
        provider
            .sign_up(SignUp {
                email: email.into(),
                password: "Festival1!".into(),
                name: "bench".into(),
            })
            .await
            .unwrap();
        provider
            .confirm_sign_up(email, &codes.last_code(email).unwrap(), None)
            .await
            .unwrap();
        let token = provider
            .sign_in(email, "Festival1!")
            .await
            .unwrap()
            .tokens
            .access_token;
        (provider, token)
    });

    c.bench_function("verify_access_token", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(provider.verify(&token).await.unwrap()) });
    });

    let phc = cognito_auth::password::hash("Festival1!").unwrap();
    let mut slow = c.benchmark_group("argon2id");
    slow.sample_size(10);
    slow.bench_function("hash", |b| {
        b.iter(|| black_box(cognito_auth::password::hash("Festival1!").unwrap()));
    });
    slow.bench_function("verify", |b| {
        b.iter(|| black_box(cognito_auth::password::verify("Festival1!", &phc)));
    });
    slow.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
