//! Conformance: instance locking and lease expiry across runtimes.
//!
//! A store one runtime owns locks it whole: a second store on it is refused, so no two
//! runtimes ever step one instance (both stores, in their default mode). A store shared by
//! many runtimes (PostgreSQL's shared mode) locks by leased partitions instead: only the holder
//! of an instance's partition commits its steps, fenced in the step's own transaction, and a
//! lease that is not renewed expires and goes to another runtime, with the work stored for it.

use crate::*;

/// Both stores in their default mode: a second runtime on the store is refused.
async fn a_second_owner_of_the_store_is_refused(store: Subject) {
    assert!(store.leases().is_none(), "the default mode has no leases");
    let second = match &store {
        Subject::Sqlite { store, .. } => SqliteStore::open(store.path()).map(|_| ()),
        #[cfg(feature = "postgres")]
        Subject::Postgres(store) => {
            let url = std::env::var("DURABLE_TEST_POSTGRES_URL").expect("configured");
            durable_runtime::store::postgres::PostgresStore::connect(&url, store.schema())
                .await
                .map(|_| ())
        }
    };
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
}

crate::conformance!(a_second_owner_of_the_store_is_refused);

#[cfg(feature = "postgres")]
mod shared {
    use super::*;
    use durable_runtime::store::postgres::{PostgresStore, SharedOptions, partition_of};
    use durable_runtime::store::{ErrorClass, Leases};
    use std::time::Duration;

    /// Two (or more) shared stores on one fresh schema, or `None` (said) without a database.
    async fn shared_stores(test: &str, ttls: &[Duration]) -> Option<Vec<Arc<PostgresStore>>> {
        let Ok(url) = std::env::var("DURABLE_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED {test}: DURABLE_TEST_POSTGRES_URL is not set");
            return None;
        };
        let schema = unique_schema();
        let mut stores = Vec::new();
        for ttl in ttls {
            let options = SharedOptions {
                lease_ttl: *ttl,
                worker_id: None,
            };
            let store = PostgresStore::connect_shared(&url, &schema, options)
                .await
                .expect("a shared store opens");
            stores.push(Arc::new(store));
        }
        Some(stores)
    }

    fn leases(store: &PostgresStore) -> Arc<dyn Leases> {
        store.leases().expect("a shared store has leases")
    }

    /// An instance id whose partition is among `parts`.
    fn id_in(parts: &[u16]) -> String {
        (0..)
            .map(|n| format!("lease-{n}"))
            .find(|id| parts.contains(&partition_of(id)))
            .expect("some id falls there")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_holder_commits_and_a_stale_holder_is_fenced_in_the_transaction() {
        let Some(stores) = shared_stores(
            "only_the_holder_commits_and_a_stale_holder_is_fenced_in_the_transaction",
            &[Duration::from_secs(60), Duration::from_secs(60)],
        )
        .await
        else {
            return;
        };
        let (a, b) = (&stores[0], &stores[1]);
        let (la, lb) = (leases(a), leases(b));
        let first = la.renew().await.expect("renews");
        assert_eq!(
            first.gained.len(),
            16,
            "alone, a worker takes every partition"
        );
        // B is live but gets nothing while A holds its share and more...
        assert!(lb.renew().await.expect("renews").gained.is_empty());
        // ...until A's next renewal gives up the partitions over its share (the highest).
        let balanced = la.renew().await.expect("renews");
        assert_eq!(balanced.lost, (8..16).collect::<Vec<u16>>());
        assert_eq!(
            lb.renew().await.expect("renews").gained,
            (8..16).collect::<Vec<u16>>()
        );

        // A step of an instance of B's partitions is refused to A, whole, without touching it.
        let theirs = id_in(&[8, 9, 10, 11, 12, 13, 14, 15]);
        let started = message_id(a.write(create(&theirs)).await.expect("anyone creates"));
        let mut stolen = step(&theirs, 0);
        stolen.consumed = vec![started];
        let err = a
            .write(Write::Step(stolen.clone()))
            .await
            .expect_err("not A's");
        assert!(matches!(err, StoreError::LeaseLost(_)), "{err}");
        assert_eq!(err.class(), ErrorClass::Conflict);
        assert!(b.read_history(&theirs).await.expect("reads").is_empty());
        b.write(Write::Step(stolen)).await.expect("B holds it");

        // A stalls past its leases (their expiry passes in the database while A's own clock
        // still trusts them) and B takes them over: A's step is refused in its transaction.
        let mine = id_in(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let started = message_id(a.write(create(&mine)).await.expect("created"));
        assert!(la.holds(&mine));
        let a_id = a.worker_id().expect("shared");
        a.execute_sql(&format!(
            "UPDATE partitions SET expires_at = now() - interval '1 second' WHERE part < 8;
             UPDATE workers SET expires_at = now() - interval '1 second' WHERE worker_id = '{a_id}'"
        ))
        .await
        .expect("expires A's leases");
        let takeover = lb.renew().await.expect("renews");
        assert!(
            takeover.gained.contains(&partition_of(&mine)),
            "B takes the expired partitions: {takeover:?}"
        );
        let mut stale = step(&mine, 0);
        stale.consumed = vec![started];
        assert!(la.holds(&mine), "A has not noticed yet");
        let err = a
            .write(Write::Step(stale.clone()))
            .await
            .expect_err("fenced");
        assert!(matches!(err, StoreError::LeaseLost(_)), "{err}");
        assert!(a.read_history(&mine).await.expect("reads").is_empty());
        // The new holder adopts the stored start and commits the step.
        let adopted = lb.adopt(100).await.expect("adopts");
        assert!(
            adopted.messages.iter().any(|m| m.id == started),
            "{adopted:?}"
        );
        b.write(Write::Step(stale)).await.expect("B commits");
        assert_eq!(b.read_history(&mine).await.expect("reads").len(), 1);
        // A's next renewal reports the loss.
        let change = la.renew().await.expect("renews");
        assert!(change.lost.contains(&partition_of(&mine)), "{change:?}");
        assert!(!la.holds(&mine));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_goes_to_a_live_worker_with_its_stored_work_adopted_once() {
        let ttl = Duration::from_millis(300);
        let Some(stores) = shared_stores(
            "an_expired_lease_goes_to_a_live_worker_with_its_stored_work_adopted_once",
            &[ttl, ttl, ttl],
        )
        .await
        else {
            return;
        };
        let (a, b, client) = (&stores[0], &stores[1], &stores[2]);
        let (la, lb) = (leases(a), leases(b));
        assert_eq!(la.renew().await.expect("renews").gained.len(), 16);
        // Work another process (a client, holding nothing) creates is adopted by the holder,
        // once.
        let id = id_in(&[3]);
        let started = message_id(client.write(create(&id)).await.expect("created"));
        let adopted = la.adopt(100).await.expect("adopts");
        assert_eq!(
            adopted.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![started]
        );
        assert!(la.adopt(100).await.expect("adopts").is_empty(), "seen once");
        // Work A creates itself is A's already: not adopted again.
        let raised = message_id(a.write(raise(&id, None)).await.expect("raised"));
        assert!(la.adopt(100).await.expect("adopts").is_empty());

        // A stops renewing (it died): once its leases expire, B takes every partition and
        // adopts everything stored in them, whoever created it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut gained = Vec::new();
        while gained.len() < 16 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "B did not take the expired leases: {gained:?}"
            );
            gained.extend(lb.renew().await.expect("renews").gained);
            tokio::time::sleep(ttl / 3).await;
        }
        let adopted = lb.adopt(100).await.expect("adopts");
        assert_eq!(
            adopted.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![started, raised]
        );
        assert!(lb.adopt(100).await.expect("adopts").is_empty());
        // The epoch moved on: A, renewing late, holds nothing and is told what it lost.
        let change = la.renew().await.expect("renews");
        assert_eq!(change.lost.len(), 16, "{change:?}");
        assert!(change.gained.is_empty(), "{change:?}");
        assert!(!la.holds(&id));
    }
}
