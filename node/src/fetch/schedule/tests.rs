//! The scheduler's rules as table tests, and its invariants under random outcomes.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::peer::{BUSY_BACKOFF, FAILED_PEER_RETRY, HAVE_REFRESH, MAX_PEER_FAILURES};
use super::*;

/// Chunk `first` of `file`.
fn unit(file: usize, first: u64) -> Unit {
    Unit { file, first, count: 1 }
}

/// A `Have` bitmap of `count` chunks holding `held`.
fn bitmap(count: u64, held: &[u64]) -> Vec<u8> {
    let mut b = vec![0u8; count.div_ceil(8) as usize];
    for i in held {
        b[(*i / 8) as usize] |= 1 << (i % 8);
    }
    b
}

/// Every chunk of a file of `count` chunks.
fn full(count: u64) -> Vec<u8> {
    bitmap(count, &(0..count).collect::<Vec<_>>())
}

/// `n` new peers, joined in order.
fn peers(s: &mut Scheduler, n: usize, now: Instant) -> Vec<PeerId> {
    let ps: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
    s.join(ps.clone(), now);
    ps
}

/// What `peer` is known to hold of `file`, as if from its `Have` at `now`.
fn knows(s: &mut Scheduler, peer: PeerId, file: usize, have: Vec<u8>, now: Instant) {
    let count = s.chunk_counts[file];
    s.peers.entry(peer).or_default().record_have(file, have, count, now);
}

/// Every unit is queued, in flight exactly once, or done; no peer has more in flight than its
/// window; the peers asked are each listed once.
fn check_invariants(s: &Scheduler, all: &HashSet<Unit>, done: &HashSet<Unit>) {
    let queued: HashSet<Unit> = s.queue.iter().copied().collect();
    assert_eq!(queued.len(), s.queue.len(), "a unit queued twice");
    let flying: HashSet<Unit> = s.flying.keys().copied().collect();
    assert!(queued.is_disjoint(&flying), "a unit both queued and in flight");
    assert!(queued.is_disjoint(done) && flying.is_disjoint(done), "a done unit still queued or in flight");
    assert_eq!(queued.len() + flying.len() + done.len(), all.len(), "a unit lost or invented");
    assert!(queued.iter().chain(&flying).chain(done).all(|u| all.contains(u)));
    for (peer, state) in &s.peers {
        let mine = s.flying.values().filter(|p| *p == peer).count();
        assert_eq!(state.in_flight, mine, "in-flight count of {peer}");
        assert!(state.in_flight <= state.limit(s.configured), "{peer} has more in flight than its window");
    }
    let order: HashSet<&PeerId> = s.order.iter().collect();
    assert_eq!(order.len(), s.order.len(), "a peer listed twice");
}

#[test]
fn rarest_first_picks_the_unit_fewest_known_holders_have() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 0), unit(0, 1), unit(0, 2)], vec![10], 4);
    let [a, b, c] = peers(&mut s, 3, now)[..] else { panic!("three peers") };
    knows(&mut s, a, 0, bitmap(10, &[0, 1, 2]), now);
    knows(&mut s, b, 0, bitmap(10, &[0, 1]), now);
    knows(&mut s, c, 0, bitmap(10, &[0]), now);
    assert_eq!(s.pick(&a, now), Some((2, false)), "chunk 2: one holder; chunk 0: three");
    let got: Vec<(PeerId, Unit, bool)> = s.assign(now).into_iter().map(|a| (a.peer, a.unit, a.ask_have)).collect();
    assert_eq!(got, [(a, unit(0, 2), false), (b, unit(0, 1), false), (c, unit(0, 0), false)]);
    // Ties keep the queue's order.
    let mut s = Scheduler::new([unit(0, 5), unit(0, 4)], vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    assert_eq!(s.assign_to(a, now).map(|x| x.unit), Some(unit(0, 5)));
}

#[test]
fn unknown_or_stale_holdings_are_asked_have_first_and_single_chunk_files_never() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 3), unit(0, 4)], vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    assert_eq!(s.pick(&a, now), Some((0, true)), "nothing known: Have first");
    knows(&mut s, a, 0, bitmap(10, &[4]), now);
    assert_eq!(s.pick(&a, now), Some((1, false)), "holds chunk 4, known fresh: no Have");
    s.queue.retain(|u| *u != unit(0, 4));
    assert_eq!(s.pick(&a, now), None, "chunk 3 not held per a fresh Have");
    assert_eq!(s.pick(&a, now + HAVE_REFRESH + Duration::from_millis(1)), Some((0, true)), "stale: ask again");
    // Unknown holdings beat known ones (nobody is known to hold them: the rarest).
    let mut s = Scheduler::new([unit(0, 4), unit(1, 0)], vec![10, 1], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    knows(&mut s, a, 0, bitmap(10, &[4]), now);
    let single = s.assign_to(a, now).map(|x| (x.unit, x.ask_have));
    assert_eq!(single, Some((unit(1, 0), false)), "a single-chunk file never asks Have");
}

#[test]
fn a_seed_is_left_alone_for_units_a_known_partial_holder_has() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 3)], vec![10], 4);
    let [seed, partial] = peers(&mut s, 2, now)[..] else { panic!("two peers") };
    knows(&mut s, seed, 0, full(10), now);
    knows(&mut s, partial, 0, bitmap(10, &[3]), now);
    assert_eq!(s.pick(&seed, now), None, "the partial holder has chunk 3");
    let got: Vec<_> = s.assign(now).into_iter().map(|a| (a.peer, a.unit)).collect();
    assert_eq!(got, [(partial, unit(0, 3))]);
    // Alone, the seed is asked for it.
    let mut s = Scheduler::new([unit(0, 3)], vec![10], 4);
    let [seed] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    knows(&mut s, seed, 0, full(10), now);
    assert_eq!(s.pick(&seed, now), Some((0, false)));
}

#[test]
fn a_seed_takes_one_request_at_a_time_while_others_trade() {
    let now = Instant::now();
    let queue = [unit(0, 6), unit(0, 7), unit(0, 8)];
    let mut s = Scheduler::new(queue, vec![10], 4);
    let [seed, fetcher] = peers(&mut s, 2, now)[..] else { panic!("two peers") };
    knows(&mut s, seed, 0, full(10), now);
    knows(&mut s, fetcher, 0, bitmap(10, &[3]), now);
    s.peers.entry(seed).or_default().window = 4;
    let got: Vec<_> = s.assign(now).into_iter().map(|a| (a.peer, a.unit)).collect();
    assert_eq!(got, [(seed, unit(0, 6))], "one at a time; the fetcher holds none of these");
    // Without a swarm, the seed's whole window.
    let mut s = Scheduler::new(queue, vec![10], 4);
    let [seed] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    knows(&mut s, seed, 0, full(10), now);
    s.peers.entry(seed).or_default().window = 4;
    assert_eq!(s.assign(now).len(), 3);
}

#[test]
fn a_peer_never_has_more_in_flight_than_its_window_which_starts_at_one() {
    let now = Instant::now();
    let all: Vec<Unit> = (0..10).map(|i| unit(0, i)).collect();
    let mut s = Scheduler::new(all.clone(), vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    knows(&mut s, a, 0, full(10), now);
    let (all, mut done) = (all.into_iter().collect::<HashSet<_>>(), HashSet::new());
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let batch = s.assign(now);
        sizes.push(batch.len());
        check_invariants(&s, &all, &done);
        for x in batch {
            s.complete(x.peer, x.unit, Outcome::Written(1, None), now, 1.0);
            done.insert(x.unit);
        }
    }
    assert_eq!(sizes, [1, 2, 4, 3], "slow start: one more per answer, at most the configured 4");
}

#[test]
fn a_bad_peer_is_never_picked_again() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 0), unit(0, 1)], vec![10], 4);
    let [a, b] = peers(&mut s, 2, now)[..] else { panic!("two peers") };
    knows(&mut s, a, 0, full(10), now);
    knows(&mut s, b, 0, full(10), now);
    let first = s.assign_to(a, now).map(|x| x.unit);
    assert_eq!(first, Some(unit(0, 0)));
    s.complete(a, unit(0, 0), Outcome::Corrupt(None), now, 1.0);
    assert_eq!(s.queue.front(), Some(&unit(0, 0)), "requeued at the front");
    assert_eq!(s.pick(&a, now), None);
    assert_eq!(s.pick(&a, now + FAILED_PEER_RETRY * 10), None, "never again");
    assert!(s.assign(now).iter().all(|x| x.peer == b));
    assert_eq!(s.bad_peers().collect::<Vec<_>>(), [&a]);
    assert!(!s.rediscovered([a], now + FAILED_PEER_RETRY * 10), "not even when found again");
}

#[test]
fn busy_shrinks_the_window_and_backs_off_when_others_can_serve() {
    let now = Instant::now();
    let all: Vec<Unit> = (0..10).map(|i| unit(0, i)).collect();
    let mut s = Scheduler::new(all, vec![10], 4);
    let [a, b] = peers(&mut s, 2, now)[..] else { panic!("two peers") };
    knows(&mut s, a, 0, full(10), now);
    knows(&mut s, b, 0, full(10), now);
    s.peers.entry(a).or_default().window = 4;
    let mine: Vec<Unit> = s.assign(now).into_iter().filter(|x| x.peer == a).map(|x| x.unit).collect();
    assert_eq!(mine.len(), 4);
    s.complete(a, mine[0], Outcome::Busy, now, 1.0);
    let state = &s.peers[&a];
    assert_eq!((state.in_flight, state.limit(4)), (3, 3), "at most what it serves us now");
    assert_eq!(state.busy_until, Some(now + BUSY_BACKOFF), "b could serve: a is left alone");
    assert_eq!(s.queue.back(), Some(&mine[0]), "the unit goes to the back of the queue");
    s.complete(a, mine[1], Outcome::Written(1, None), now, 1.0);
    assert_eq!(s.pick(&a, now), None, "backing off");
    assert_eq!(s.backoff_ends(now), Some(now + BUSY_BACKOFF));
    assert!(s.pick(&a, now + BUSY_BACKOFF).is_some(), "asked again after the back-off");

    // Busy from the only source while it still serves us: no back-off, just a smaller window.
    let mut s = Scheduler::new((0..10).map(|i| unit(0, i)), vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    s.peers.entry(a).or_default().window = 4;
    let mine: Vec<Unit> = s.assign(now).into_iter().map(|x| x.unit).collect();
    s.complete(a, mine[0], Outcome::Busy, now, 1.0);
    assert_eq!(s.peers[&a].busy_until, None);
    assert!(s.assign(now).is_empty(), "window 3, three in flight");
}

#[test]
fn a_peer_dropped_after_three_failures_is_asked_again_only_after_the_pause() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 0)], vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    knows(&mut s, a, 0, full(10), now);
    for i in 0..MAX_PEER_FAILURES {
        assert_eq!(s.peer_count(), 1, "still asked after {i} failures");
        let got = s.assign_to(a, now).map(|x| x.unit);
        assert_eq!(got, Some(unit(0, 0)));
        s.complete(a, unit(0, 0), Outcome::Failed("cut".into()), now, 1.0);
    }
    assert_eq!(s.peer_count(), 0, "dropped");
    assert!(s.assign(now).is_empty());
    s.join([a], now + FAILED_PEER_RETRY / 2);
    assert!(!s.rediscovered([a], now + FAILED_PEER_RETRY / 2), "too soon");
    assert_eq!(s.peer_count(), 0);
    assert!(s.rediscovered([a], now + FAILED_PEER_RETRY), "after the pause");
    let again = s.assign(now + FAILED_PEER_RETRY);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].peer, a);
}

#[test]
fn refusals_drop_the_peer_and_the_fetch_is_refused_when_nobody_is_left() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 0)], vec![10], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    assert!(!s.refused());
    let got = s.assign_to(a, now).map(|x| x.unit);
    assert_eq!(got, Some(unit(0, 0)));
    s.complete(a, unit(0, 0), Outcome::Forbidden, now, 1.0);
    assert!(s.refused());
    assert_eq!(s.queued().len(), 1);
}

#[test]
fn not_held_and_misfit_answers_requeue_at_the_front_and_steer_the_peer_away() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 0), unit(0, 1)], vec![10, 4], 4);
    let [a] = peers(&mut s, 1, now)[..] else { panic!("one peer") };
    let got = s.assign_to(a, now).map(|x| x.unit);
    assert_eq!(got, Some(unit(0, 0)));
    s.complete(a, unit(0, 0), Outcome::NotHeld(bitmap(10, &[1])), now, 1.0);
    assert_eq!(s.queue.front(), Some(&unit(0, 0)));
    let got = s.assign_to(a, now).map(|x| (x.unit, x.ask_have));
    assert_eq!(got, Some((unit(0, 1), false)), "what its Have lists");
    s.complete(a, unit(0, 1), Outcome::Misfit("other chunk count".into()), now, 1.0);
    s.queue.push_back(unit(1, 0));
    let got = s.assign_to(a, now).map(|x| x.unit);
    assert_eq!(got, Some(unit(1, 0)), "never asked for that file again");
    // An outcome for a unit not in flight from that peer changes nothing.
    s.complete(a, unit(0, 0), Outcome::Written(1, None), now, 1.0);
    assert_eq!(s.queued().len(), 2);
}

#[test]
fn invariants_hold_under_random_outcomes_and_every_unit_arrives() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let counts = vec![12, 3, 1];
        let all: Vec<Unit> = counts
            .iter()
            .enumerate()
            .flat_map(|(f, n)| {
                (0..*n).step_by(2).map(move |i| Unit { file: f, first: i, count: if i + 1 < *n { 2 } else { 1 } })
            })
            .collect();
        let mut now = Instant::now();
        let mut s = Scheduler::new(all.clone(), counts.clone(), 3);
        let all: HashSet<Unit> = all.into_iter().collect();
        let mut done = HashSet::new();
        let ps = peers(&mut s, 5, now);
        // Peer 0 is a reliable seed (it answers with the chunks or Busy); the others answer anything.
        let mut flying: Vec<(PeerId, Unit)> = Vec::new();
        for _ in 0..5_000 {
            if done.len() == all.len() {
                break;
            }
            for x in s.assign(now) {
                let state = &s.peers[&x.peer];
                assert!(!state.bad, "a bad peer was picked");
                assert!(state.busy_until.is_none_or(|t| t <= now), "a peer backing off was picked");
                flying.push((x.peer, x.unit));
            }
            // Watches come and go with random answers: they never touch the queue or flights.
            for w in s.watches(now) {
                assert!(s.peers[&w.peer].watching.contains(&w.file));
                let count = counts[w.file];
                let answer = match rng.gen_range(0..4) {
                    0 => WatchAnswer::Have(bitmap(count, &[rng.gen_range(0..count)])),
                    1 => WatchAnswer::Paused,
                    2 if rng.gen_bool(0.1) => WatchAnswer::Unsupported,
                    _ => WatchAnswer::Have(full(count)),
                };
                s.watched(w.peer, w.file, answer, now);
                assert!(!s.peers[&w.peer].watching.contains(&w.file));
            }
            check_invariants(&s, &all, &done);
            if flying.is_empty() {
                now += Duration::from_secs(1);
                s.rediscovered(ps.clone(), now);
                continue;
            }
            let (peer, u) = flying.swap_remove(rng.gen_range(0..flying.len()));
            let count = counts[u.file];
            let outcome = match (peer == ps[0], rng.gen_range(0..10)) {
                (true, 0) | (false, 0) => Outcome::Busy,
                (true, _) | (false, 1..=4) => Outcome::Written(1, rng.gen_bool(0.5).then(|| full(count))),
                (false, 5) => Outcome::Failed("cut".into()),
                (false, 6) => Outcome::NotHeld(bitmap(count, &[rng.gen_range(0..count)])),
                (false, 7) if rng.gen_bool(0.1) => Outcome::Corrupt(None),
                (false, 7) => Outcome::Misfit("other chunk count".into()),
                (false, _) => Outcome::Written(1, Some(bitmap(count, &u.chunks().collect::<Vec<_>>()))),
            };
            if matches!(outcome, Outcome::Written(..)) {
                done.insert(u);
            }
            s.complete(peer, u, outcome, now, rng.gen_range(0.5..=1.0));
            check_invariants(&s, &all, &done);
            now += Duration::from_millis(rng.gen_range(0..100));
        }
        assert_eq!(done.len(), all.len(), "seed {seed}: every unit arrives from the reliable seed");
    }
}

#[test]
fn partial_holders_are_watched_once_each_and_seeds_and_unknown_peers_not() {
    let now = Instant::now();
    let mut s = Scheduler::new((0..10).map(|i| unit(0, i)), vec![10], 4);
    let [seed, partial, empty, unknown] = peers(&mut s, 4, now)[..] else { panic!() };
    knows(&mut s, seed, 0, full(10), now);
    knows(&mut s, partial, 0, bitmap(10, &[1, 2]), now);
    knows(&mut s, empty, 0, bitmap(10, &[]), now);
    let w = s.watches(now);
    let watched: HashSet<(PeerId, u64)> = w.iter().map(|w| (w.peer, w.known)).collect();
    assert_eq!(watched, HashSet::from([(partial, 2), (empty, 0)]), "not the seed, not a peer never asked");
    assert!(!w.iter().any(|w| w.peer == unknown || w.peer == seed));
    assert!(s.watches(now).is_empty(), "one watch per peer and file at a time");
    // The partial holder gains chunk 5: its watch answers, and it is watched again from there.
    s.watched(partial, 0, WatchAnswer::Have(bitmap(10, &[1, 2, 5])), now);
    let again = s.watches(now);
    assert_eq!(again, vec![WatchRequest { peer: partial, file: 0, known: 3 }]);
    // An older node: polled from now on, never watched. A refusal: watched again after a pause.
    s.watched(empty, 0, WatchAnswer::Unsupported, now);
    s.watched(partial, 0, WatchAnswer::Paused, now);
    assert!(s.watches(now + WATCH_PAUSE / 2).is_empty());
    assert_eq!(s.watches(now + WATCH_PAUSE).iter().map(|w| w.peer).collect::<Vec<_>>(), vec![partial]);
    // It completes: a seed now, no longer watched.
    s.watched(partial, 0, WatchAnswer::Have(full(10)), now + WATCH_PAUSE);
    assert!(s.watches(now + WATCH_PAUSE * 3).is_empty());
}

#[test]
fn a_watched_peer_is_not_polled_and_its_gains_are_asked_for_at_once() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 4)], vec![10], 4);
    let [partial] = peers(&mut s, 1, now)[..] else { panic!() };
    knows(&mut s, partial, 0, bitmap(10, &[1]), now);
    assert_eq!(s.watches(now).len(), 1);
    let later = now + HAVE_REFRESH * 10;
    assert!(s.assign(later).is_empty(), "watched: its Have is current, however old, and lacks chunk 4");
    s.watched(partial, 0, WatchAnswer::Have(bitmap(10, &[1, 4])), later);
    let a = s.assign(later);
    assert_eq!(
        a,
        vec![Assignment { peer: partial, unit: unit(0, 4), ask_have: false }],
        "asked at once, no Have first"
    );
    // A misfit answer to a watch: never asked for the file again.
    let mut s = Scheduler::new([unit(0, 4)], vec![10], 4);
    let [odd] = peers(&mut s, 1, now)[..] else { panic!() };
    knows(&mut s, odd, 0, bitmap(10, &[1]), now);
    assert_eq!(s.watches(now).len(), 1);
    s.watched(odd, 0, WatchAnswer::Misfit, now);
    assert!(s.assign(later).is_empty() && s.watches(later).is_empty());
}

#[test]
fn only_the_first_files_of_the_queue_are_watched() {
    let now = Instant::now();
    let files = MAX_WATCHED_FILES + 3;
    let mut s = Scheduler::new((0..files).map(|f| unit(f, 0)), vec![2; files], 4);
    let [partial] = peers(&mut s, 1, now)[..] else { panic!() };
    for f in 0..files {
        knows(&mut s, partial, f, bitmap(2, &[1]), now);
    }
    let watched: Vec<usize> = s.watches(now).iter().map(|w| w.file).collect();
    assert_eq!(watched, (0..MAX_WATCHED_FILES).collect::<Vec<_>>());
}

#[test]
fn a_partial_holder_that_does_not_serve_what_it_advertised_is_dropped() {
    let now = Instant::now();
    let mut s = Scheduler::new((0..4).map(|i| unit(0, i)), vec![4], 4);
    let [liar, seed] = peers(&mut s, 2, now)[..] else { panic!() };
    knows(&mut s, liar, 0, bitmap(4, &[0, 1, 2, 3]).iter().map(|b| b & 0b0111).collect(), now);
    knows(&mut s, seed, 0, full(4), now);
    for round in 0..MAX_PEER_FAILURES {
        let a = s.assign_to(liar, now).expect("the liar is asked for what it advertised");
        assert!(a.unit.first < 3);
        // It says it holds the chunks, then refuses them.
        s.complete(liar, a.unit, Outcome::NotHeld(bitmap(4, &[0, 1, 2])), now, 1.0);
        assert_eq!(s.order.contains(&liar), round + 1 < MAX_PEER_FAILURES);
    }
    let next = s.assign(now);
    assert!(next.iter().all(|a| a.peer != liar), "dropped after lying {MAX_PEER_FAILURES} times");
    // A seed refusing a chunk it handed out already (super-seeding) is not lying.
    let a = next.first().expect("the seed is asked");
    s.complete(seed, a.unit, Outcome::NotHeld(full(4)), now, 1.0);
    assert_eq!(s.peers[&seed].failures, 0);
}

#[test]
fn a_watch_answer_without_news_pauses_the_watch() {
    let now = Instant::now();
    let mut s = Scheduler::new([unit(0, 4)], vec![10], 4);
    let [chatty] = peers(&mut s, 1, now)[..] else { panic!() };
    knows(&mut s, chatty, 0, bitmap(10, &[1]), now);
    assert_eq!(s.watches(now).len(), 1);
    // Answered at once with what we knew: asked again only after a pause.
    s.watched(chatty, 0, WatchAnswer::Have(bitmap(10, &[1])), now);
    assert!(s.watches(now).is_empty());
    assert_eq!(s.watches(now + WATCH_PAUSE).len(), 1);
}
