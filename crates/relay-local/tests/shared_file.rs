//! Two handles on one directory stand in for two processes (`relay dev` and a CLI call): each
//! has its own writer thread, write connection and readers, sharing only the file.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{depth_pair, event, receive_now, source, subscription, task};
use relay_core::ports::{Catalog, EventArchive};
use relay_core::{Queue, QueueConsumer, QueueMessage};
use relay_local::{LocalBackend, LocalOptions, LocalQueueName as Q};

const VIS: Duration = Duration::from_secs(30);

fn open(dir: &std::path::Path) -> LocalBackend {
    LocalBackend::open(dir, LocalOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(dir.path());
    let cli = open(dir.path());

    cli.put_source(&source("gh")).await.unwrap();
    cli.put_subscription(&subscription("sub_1", "gh"))
        .await
        .unwrap();
    assert_eq!(dev.get_source("gh").await.unwrap(), Some(source("gh")));
    assert_eq!(dev.source_subscriptions("gh").await.unwrap().len(), 1);

    dev.send_event(&event("evt_1", 1)).await.unwrap();
    dev.put_event(&event("evt_1", 1), i64::MAX).await.unwrap();
    let listed = cli
        .list_events(&relay_core::EventQuery::newest(10, 1))
        .await
        .unwrap();
    assert_eq!(
        listed.events,
        vec![relay_core::EventSummary::of(&event("evt_1", 1))]
    );
    assert_eq!(depth_pair(&cli, Q::Events).await.unwrap(), (1, 0));

    let got = receive_now(&cli, Q::Events, 10, VIS).await.unwrap();
    assert_eq!(got.len(), 1);
    // The other process's receive hides the message here too.
    assert!(
        receive_now(&dev, Q::Events, 10, VIS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(dev.delete(Q::Events, &got[0].receipt).await.unwrap());
    assert_eq!(depth_pair(&cli, Q::Events).await.unwrap(), (0, 0));

    // `relay redrive` from the CLI while `relay dev` runs.
    dev.dead_letter_delivery(&task("evt_1", 8)).await.unwrap();
    assert_eq!(cli.redrive(Q::DeliveriesDlq).await.unwrap(), 1);
    assert_eq!(depth_pair(&dev, Q::Deliveries).await.unwrap(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_notices_a_send_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let dev = open(dir.path());
    let cli = open(dir.path());
    let waiter = {
        let dev = dev.clone();
        tokio::spawn(async move {
            dev.wait_for_messages(Q::Deliveries, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    cli.send_delivery(&task("evt_1", 1), 0).await.unwrap();
    assert!(waiter.await.unwrap().unwrap());
    assert_eq!(
        receive_now(&dev, Q::Deliveries, 1, VIS)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let b = open(dir.path());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let backend = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { backend.send_event(&event(&format!("evt_{i}"), i)).await });
    }
    while let Some(sent) = tasks.join_next().await {
        sent.unwrap().unwrap();
    }
    assert_eq!(depth_pair(&a, Q::Events).await.unwrap(), (400, 0));
}

/// 2,000 concurrent sends end up in a handful of group commits; every one must be durable and
/// readable, which a fresh handle (a new process) checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_keeps_every_concurrent_send() {
    let dir = tempfile::tempdir().unwrap();
    {
        let queue = open(dir.path());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2000 {
            let queue = queue.clone();
            tasks.spawn(async move { queue.send_event(&event(&format!("evt_{i}"), i)).await });
        }
        while let Some(sent) = tasks.join_next().await {
            sent.unwrap().unwrap();
        }
        // Concurrent callers shared commits (2,000 fsyncs one by one would be the failure).
        let stats = queue.writer_stats();
        assert!(stats.jobs >= 2000, "{stats:?}");
        assert!(stats.batches < stats.jobs, "{stats:?}");
    }
    let fresh = open(dir.path());
    assert_eq!(depth_pair(&fresh, Q::Events).await.unwrap(), (2000, 0));
    let mut seen = HashSet::new();
    loop {
        let got = receive_now(&fresh, Q::Events, 256, VIS).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in &got {
            match serde_json::from_str(&m.body).unwrap() {
                QueueMessage::Event(e) => assert!(seen.insert(e.id)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            fresh
                .delete_many(
                    Q::Events,
                    &got.iter().map(|m| m.receipt.as_str()).collect::<Vec<_>>()
                )
                .await
                .unwrap(),
            got.len() as u64
        );
    }
    assert_eq!(seen.len(), 2000);
    assert_eq!(depth_pair(&fresh, Q::Events).await.unwrap(), (0, 0));
}
