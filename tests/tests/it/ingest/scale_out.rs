//! Scale-out and member loss under a live stream, on the shared broker: three worker
//! processes share a 12-partition topic in one consumer group, a fourth joins, then the
//! group's leader is SIGKILLed (its partitions move once its 6 s session expires) and the new
//! leader leaves with SIGTERM. Every worker does part of the work, the others carry on by
//! themselves, and every event lands exactly once in `logs` and in the `logs_minute` rollup.
//!
//! Who leads the group: librdkafka (classic group protocol) logs each JoinGroup response with
//! the `cgrp` debug context, `JoinGroup response: GenerationId <g>, Protocol range, LeaderId
//! <member> (me), my MemberId <member>, member metadata count <n>: (no error)`, " (me)" only in
//! the leader's log, and only the leader gets the member list (`count` = the group's size).
//! The workers run with that debug context on (`WorkerProcess::spawn_with_group_debug`) and the
//! test reads the leader of each generation from their logs. In the classic protocol the
//! coordinator makes the first member to join an empty group its leader and keeps it while it
//! rejoins each rebalance, so the leader is expected to be the worker that started first (the
//! test logs whether it is, but trusts the logs).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::Scratch;
use crate::support::eventually;
use crate::support::ingest::{IngestStack, StreamPublisher, fast_producer};
use crate::support::services::WorkerProcess;
use nix::sys::signal::Signal;

const ROWS_WRITTEN: &str = "logbus_ingest_rows_written_total";

/// One successful JoinGroup response a worker logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Join {
    generation: i64,
    /// This worker was named the generation's leader.
    leader: bool,
    /// The members the leader was given (0 for followers).
    members: usize,
}

fn parse_join(line: &str) -> Option<Join> {
    let rest = &line[line.find("JoinGroup response: GenerationId ")?..];
    let rest = rest.strip_prefix("JoinGroup response: GenerationId ")?;
    let digits = |s: &str| -> Option<i64> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let generation = digits(rest)?;
    let leader_id = &rest[rest.find("LeaderId ")? + "LeaderId ".len()..];
    let leader_id = &leader_id[..leader_id.find(", my MemberId")?];
    let count = &rest[rest.find("member metadata count ")? + "member metadata count ".len()..];
    let members = usize::try_from(digits(count)?).ok()?;
    rest.contains(": (no error)").then_some(Join {
        generation,
        leader: leader_id.ends_with(" (me)"),
        members,
    })
}

fn joins(log: &Path) -> Vec<Join> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(parse_join)
        .collect()
}

/// The newest generation newer than `after`, if exactly `members` (indices into `workers`)
/// are in it: each logged joining it, one of them as its leader, given all of them. Returns
/// the generation and its leader (an index into `workers`).
fn generation_of(
    workers: &[Option<WorkerProcess>],
    members: &[usize],
    after: i64,
) -> Option<(i64, usize)> {
    let logs: Vec<(usize, Vec<Join>)> = members
        .iter()
        .map(|&i| {
            (
                i,
                joins(workers[i].as_ref().expect("a running worker").log()),
            )
        })
        .collect();
    let newest = logs
        .iter()
        .flat_map(|(_, joins)| joins.iter().map(|j| j.generation))
        .max()?;
    if newest <= after {
        return None;
    }
    let mut leader = None;
    for (i, joins) in &logs {
        let join = joins.iter().rev().find(|j| j.generation == newest)?;
        if join.leader {
            if join.members != members.len() || leader.is_some() {
                return None;
            }
            leader = Some(*i);
        }
    }
    Some((newest, leader?))
}

async fn wait_for_generation(
    workers: &[Option<WorkerProcess>],
    members: &[usize],
    after: i64,
) -> (i64, usize) {
    eventually(
        &format!("a group generation after {after} of exactly workers {members:?}"),
        Duration::from_secs(60),
        || std::future::ready(generation_of(workers, members, after)),
    )
    .await
}

/// Rows the worker wrote into `logs`, from its `/metrics` (it must answer).
async fn rows_written(worker: &WorkerProcess) -> u64 {
    worker
        .metric(ROWS_WRITTEN)
        .await
        .expect("the worker answers /metrics") as u64
}

/// Waits until each of `members` wrote rows of its own.
async fn wait_until_each_wrote(workers: &[Option<WorkerProcess>], members: &[usize]) {
    eventually(
        &format!("rows written by each of workers {members:?}"),
        Duration::from_secs(60),
        || async {
            for &i in members {
                let worker = workers[i].as_ref().expect("a running worker");
                if worker.metric(ROWS_WRITTEN).await? < 1.0 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

async fn spawn(
    config: &logbus_ingest::IngestConfig,
    scratch: &Scratch,
    index: usize,
) -> Option<WorkerProcess> {
    let log = scratch.path().join(format!("worker-{index}.log"));
    let mut worker = WorkerProcess::spawn_with_group_debug(config, &log).await;
    worker.wait_ready(true, Duration::from_secs(60)).await;
    Some(worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_scale_out_then_lose_the_leader_and_another_keeping_every_event_exactly_once() {
    crate::support::init_tracing();
    let _heavy = crate::support::heavy_test().await;
    let started = Instant::now();
    let scratch = Scratch::new("scale_out");
    let stack = IngestStack::new(12).await;
    let mut config = stack.config();
    config.batch_max_rows = 1_000;
    // 12 partitions over 4 workers on a shared 2-core machine: flushing each partition every
    // 500 ms rather than 200 ms keeps ClickHouse at a fraction of the inserts.
    config.flush_interval_ms = 500;

    let stream = StreamPublisher::start(
        fast_producer(),
        &stack.logs_topic,
        91,
        400,
        Duration::from_millis(250),
    );
    let mut workers: Vec<Option<WorkerProcess>> = Vec::new();
    let mut written = [0u64; 4];

    // The first worker: alone in the group, its first member, hence its leader.
    workers.push(spawn(&config, &scratch, 0).await);
    wait_until_each_wrote(&workers, &[0]).await;
    // Two more: three members.
    workers.push(spawn(&config, &scratch, 1).await);
    workers.push(spawn(&config, &scratch, 2).await);
    let (three, leader) = wait_for_generation(&workers, &[0, 1, 2], 0).await;
    eprintln!(
        "generation {three} of workers 0-2 led by worker {leader}, {:?} in",
        started.elapsed()
    );
    wait_until_each_wrote(&workers, &[0, 1, 2]).await;

    // A fourth joins while the stream goes on.
    workers.push(spawn(&config, &scratch, 3).await);
    let (four, leader) = wait_for_generation(&workers, &[0, 1, 2, 3], three).await;
    eprintln!(
        "generation {four} of workers 0-3 led by worker {leader} (the first to join: {}), {:?} in",
        leader == 0,
        started.elapsed()
    );
    wait_until_each_wrote(&workers, &[0, 1, 2, 3]).await;

    // SIGKILL the leader; its partitions move once its session expires.
    let mut victim = workers[leader].take().expect("the leader runs");
    written[leader] = rows_written(&victim).await;
    let rows_at_kill = stack.totals().await.rows;
    victim.signal(Signal::SIGKILL);
    let status = victim.wait_exit(Duration::from_secs(10)).await;
    let killed = Instant::now();
    eprintln!(
        "leader (worker {leader}, pid {}) SIGKILLed ({status}) after writing {} rows; {rows_at_kill} \
         rows in logs",
        victim.pid(),
        written[leader]
    );
    drop(victim);
    let survivors: Vec<usize> = (0..4).filter(|i| *i != leader).collect();
    let (after_kill, new_leader) = wait_for_generation(&workers, &survivors, four).await;
    eprintln!(
        "generation {after_kill} of workers {survivors:?} led by worker {new_leader}, {:?} after \
         the kill",
        killed.elapsed()
    );
    let rows = stack.totals().await.rows;
    stack
        .wait_for_rows(rows + 2_000, Duration::from_secs(60))
        .await;

    // The new leader leaves cleanly (SIGTERM: flush, commit, leave the group, exit 0).
    let mut leaving = workers[new_leader].take().expect("the new leader runs");
    written[new_leader] = rows_written(&leaving).await;
    leaving.signal(Signal::SIGTERM);
    let status = leaving.wait_exit(Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "worker {new_leader} exits cleanly on SIGTERM ({status}):\n{}",
        leaving.log_tail(40)
    );
    eprintln!(
        "new leader (worker {new_leader}) left with SIGTERM ({status}) after writing {} rows, \
         {:?} after the kill",
        written[new_leader],
        killed.elapsed()
    );
    drop(leaving);
    let rest: Vec<usize> = survivors
        .iter()
        .copied()
        .filter(|i| *i != new_leader)
        .collect();
    let (last, last_leader) = wait_for_generation(&workers, &rest, after_kill).await;
    eprintln!("generation {last} of workers {rest:?} led by worker {last_leader}");
    let rows = stack.totals().await.rows;
    stack
        .wait_for_rows(rows + 2_000, Duration::from_secs(60))
        .await;

    let (total, quota) = stream.finish().await;
    stack
        .assert_exactly_once(total, quota, Duration::from_secs(90))
        .await;

    // The two left recovered by themselves: the same processes, ready; they stop cleanly.
    for &i in &rest {
        let mut worker = workers[i].take().expect("a running worker");
        worker.assert_running();
        worker.wait_ready(true, Duration::from_secs(60)).await;
        written[i] = rows_written(&worker).await;
        worker.signal(Signal::SIGTERM);
        let status = worker.wait_exit(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "worker {i} exits cleanly on SIGTERM ({status}):\n{}",
            worker.log_tail(40)
        );
    }
    eprintln!(
        "{total} events exactly once in {:?}; rows written per worker: {written:?}",
        started.elapsed()
    );
    for (i, rows) in written.iter().enumerate() {
        assert!(*rows > 0, "worker {i} did part of the work: {written:?}");
    }
    stack.finish().await;
}

#[test]
fn join_group_responses_are_parsed() {
    let leader = r#"{"fields":{"message":"librdkafka: JOINGROUP [thrd:main]: GroupCoordinator/1: JoinGroup response: GenerationId 7, Protocol range, LeaderId rdkafka-1a (me), my MemberId rdkafka-1a, member metadata count 3: (no error)"}}"#;
    let follower = "JoinGroup response: GenerationId 7, Protocol range, LeaderId rdkafka-1a, my \
                    MemberId rdkafka-2b, member metadata count 0: (no error)";
    let failed = "JoinGroup response: GenerationId -1, Protocol , LeaderId , my MemberId \
                  rdkafka-2b, member metadata count 0: Broker: Unknown member";
    assert_eq!(
        parse_join(leader),
        Some(Join {
            generation: 7,
            leader: true,
            members: 3
        })
    );
    assert_eq!(
        parse_join(follower),
        Some(Join {
            generation: 7,
            leader: false,
            members: 0
        })
    );
    assert_eq!(parse_join(failed), None);
}
