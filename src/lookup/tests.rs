use super::*;

const BOUNDS: Bounds = Bounds {
    max_entries: 4,
    max_bytes: 1000,
    ask_timeout: 5_000,
    retry_interval: 1_000,
};

fn life(fresh_until: Millis, stale_until: Millis) -> Lifetime {
    Lifetime {
        fresh_until,
        stale_until,
    }
}

fn answer(value: &'static str, weight: usize, life: Lifetime) -> Settled<&'static str> {
    Settled::Answer {
        value,
        weight,
        life,
    }
}

#[test]
fn one_question_per_key_however_many_requests_wait_for_it() {
    let mut l = Lookup::new(BOUNDS);
    assert_eq!(l.find(&"k", 1, 0), Found::Ask);
    assert_eq!(l.find(&"k", 2, 1), Found::Wait);
    assert_eq!(l.find(&"k", 3, 2), Found::Wait);
    assert_eq!(l.find(&"other", 4, 2), Found::Ask);
    assert_eq!(
        l.settle(&"k", answer("yes", 3, life(100, 100)), 10),
        vec![1, 2, 3]
    );
    assert_eq!(l.find(&"k", 5, 50), Found::Answer(&"yes"));
    assert_eq!(l.settle(&"other", Settled::Failed, 10), vec![4]);
}

#[test]
fn an_answer_is_asked_again_once_its_fresh_life_ends() {
    let mut l = Lookup::new(BOUNDS);
    l.find(&"k", 1, 0);
    l.settle(&"k", answer("v1", 1, life(100, 100)), 0);
    assert_eq!(l.find(&"k", 2, 99), Found::Answer(&"v1"));
    assert_eq!(l.find(&"k", 3, 100), Found::Ask);
    assert_eq!(l.find(&"k", 4, 101), Found::Wait);
    assert_eq!(
        l.settle(&"k", answer("v2", 1, life(300, 300)), 150),
        vec![3, 4]
    );
    assert_eq!(l.find(&"k", 5, 200), Found::Answer(&"v2"));
}

#[test]
fn a_failed_question_serves_the_stale_answer_and_asks_again_only_every_retry_interval() {
    let mut l = Lookup::new(BOUNDS);
    l.find(&"k", 1, 0);
    l.settle(&"k", answer("old", 1, life(100, 10_000)), 0);
    assert_eq!(l.find(&"k", 2, 100), Found::Ask);
    assert_eq!(l.settle(&"k", Settled::Failed, 200), vec![2]);
    // Served stale, without asking, until the retry interval passed.
    assert_eq!(l.find(&"k", 3, 200), Found::Answer(&"old"));
    assert_eq!(l.find(&"k", 4, 1_199), Found::Answer(&"old"));
    assert_eq!(l.find(&"k", 5, 1_200), Found::Ask);
    l.settle(&"k", Settled::Failed, 1_300);
    // Never past stale_until.
    assert_eq!(l.find(&"k", 6, 10_000), Found::Ask);
    assert_eq!(l.settle(&"k", Settled::Failed, 10_001), vec![6]);
    assert!(l.is_empty());
    assert_eq!(l.bytes(), 0);
}

#[test]
fn errors_are_never_remembered() {
    let mut l: Lookup<&str, &str> = Lookup::new(BOUNDS);
    l.find(&"k", 1, 0);
    assert_eq!(l.settle(&"k", Settled::Failed, 5), vec![1]);
    assert!(l.is_empty());
    assert_eq!(l.find(&"k", 2, 6), Found::Ask);
}

#[test]
fn an_uncached_or_already_ended_answer_releases_the_waiters_and_keeps_nothing() {
    let mut l = Lookup::new(BOUNDS);
    l.find(&"k", 1, 0);
    l.find(&"k", 2, 0);
    assert_eq!(l.settle(&"k", Settled::Uncached, 5), vec![1, 2]);
    assert!(l.is_empty());
    l.find(&"k", 3, 10);
    assert_eq!(l.settle(&"k", answer("late", 1, life(10, 10)), 10), vec![3]);
    assert!(l.is_empty());
    assert_eq!(l.bytes(), 0);
}

#[test]
fn the_oldest_answers_go_first_when_entries_run_out() {
    let mut l = Lookup::new(Bounds {
        max_entries: 2,
        ..BOUNDS
    });
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        l.find(k, 1, 0);
        l.settle(k, answer(k, 1, life(100, 100)), u64::try_from(i).unwrap());
    }
    assert_eq!(l.len(), 2);
    assert_eq!(l.find(&"b", 9, 10), Found::Answer(&"b"));
    assert_eq!(l.find(&"c", 9, 10), Found::Answer(&"c"));
    // a went; asking for it again makes room by dropping b, now the oldest.
    assert_eq!(l.find(&"a", 9, 10), Found::Ask);
    assert_eq!(l.len(), 2);
    assert_eq!(l.find(&"c", 9, 10), Found::Answer(&"c"));
}

#[test]
fn the_oldest_answers_go_first_when_bytes_run_out_and_an_answer_too_big_is_not_kept() {
    let mut l = Lookup::new(Bounds {
        max_bytes: 100,
        ..BOUNDS
    });
    l.find(&"a", 1, 0);
    l.settle(&"a", answer("a", 60, life(100, 100)), 0);
    l.find(&"b", 2, 0);
    l.settle(&"b", answer("b", 60, life(100, 100)), 0);
    assert_eq!(l.bytes(), 60);
    assert_eq!(l.find(&"b", 3, 1), Found::Answer(&"b"));
    assert_eq!(l.find(&"a", 4, 1), Found::Ask);
    assert_eq!(
        l.settle(&"a", answer("huge", 101, life(100, 100)), 2),
        vec![4]
    );
    assert_eq!(l.bytes(), 60);
    assert_eq!(l.find(&"a", 5, 3), Found::Ask);
}

#[test]
fn questions_in_flight_are_never_evicted_and_a_table_full_of_them_says_so() {
    let mut l: Lookup<&str, &str> = Lookup::new(Bounds {
        max_entries: 2,
        ..BOUNDS
    });
    assert_eq!(l.find(&"a", 1, 0), Found::Ask);
    assert_eq!(l.find(&"b", 2, 0), Found::Ask);
    assert_eq!(l.find(&"c", 3, 0), Found::Full);
    assert_eq!(l.settle(&"a", Settled::Failed, 1), vec![1]);
    assert_eq!(l.find(&"c", 3, 1), Found::Ask);
}

#[test]
fn a_question_never_answered_is_asked_again_after_the_timeout() {
    let mut l: Lookup<&str, &str> = Lookup::new(BOUNDS);
    assert_eq!(l.find(&"k", 1, 0), Found::Ask);
    assert_eq!(l.find(&"k", 2, 4_999), Found::Wait);
    assert_eq!(l.find(&"k", 3, 5_000), Found::Ask);
    assert_eq!(l.find(&"k", 4, 5_001), Found::Wait);
    assert_eq!(
        l.settle(&"k", answer("v", 1, life(9_000, 9_000)), 5_100),
        vec![1, 2, 3, 4]
    );
    // The first question's late answer changes nothing.
    assert_eq!(
        l.settle(&"k", answer("late", 1, life(99_000, 99_000)), 5_200),
        Vec::<u32>::new()
    );
    assert_eq!(l.find(&"k", 5, 5_300), Found::Answer(&"v"));
}

#[test]
fn a_stream_gone_while_waiting_is_not_resumed() {
    let mut l = Lookup::new(BOUNDS);
    l.find(&"k", 1, 0);
    l.find(&"k", 2, 0);
    l.find(&"k", 3, 0);
    l.forget_waiter(2);
    assert_eq!(l.settle(&"k", answer("v", 1, life(10, 10)), 1), vec![1, 3]);
    assert_eq!(
        l.settle(&"never-asked", Settled::Failed, 1),
        Vec::<u32>::new()
    );
}

#[test]
fn expire_frees_what_can_no_longer_serve() {
    let mut l = Lookup::new(BOUNDS);
    l.find(&"short", 1, 0);
    l.settle(&"short", answer("s", 10, life(50, 50)), 0);
    l.find(&"long", 2, 0);
    l.settle(&"long", answer("l", 20, life(50, 500)), 0);
    l.expire(100);
    assert_eq!((l.len(), l.bytes()), (1, 20));
    l.expire(500);
    assert_eq!((l.len(), l.bytes(), l.order.len()), (0, 0, 0));
}

#[test]
fn the_age_queue_stays_bounded_when_one_key_is_answered_again_and_again() {
    let mut l = Lookup::new(BOUNDS);
    for i in 0..10_000u64 {
        let now = i * 10;
        if l.find(&"k", 1, now) == Found::Ask {
            l.settle(&"k", answer("v", 1, life(now + 5, now + 5)), now);
        }
    }
    assert!(l.order.len() <= 2 * l.len() + 17, "{}", l.order.len());
    assert_eq!(l.bytes(), 1);
}

/// The shape of the first user (issue 14): introspection answers, positive ones for their
/// `CachePolicy` life, negative ones for `negative_cache_duration`, errors not at all.
#[test]
fn a_fake_introspection_use_keeps_active_and_inactive_answers_for_their_own_lives() {
    use crate::introspection::{Answer, CachePolicy, TokenKeyer};
    let policy = CachePolicy {
        cache_duration: 300,
        negative_cache_duration: 10,
        stale_if_error: 0,
    };
    let keyer = TokenKeyer::new(&[7; 32]);
    let mut l = Lookup::new(BOUNDS);
    let settle = |l: &mut Lookup<_, _>, key, answer: Answer, now_s: i64| {
        let now = u64::try_from(now_s).unwrap() * 1000;
        match policy.lifetime(&answer, now_s) {
            Some(life) => l.settle(
                &key,
                Settled::Answer {
                    value: matches!(answer, Answer::Active(_)),
                    weight: 64,
                    life: Lifetime {
                        fresh_until: u64::try_from(life.fresh_until).unwrap() * 1000,
                        stale_until: u64::try_from(life.stale_until).unwrap() * 1000,
                    },
                },
                now,
            ),
            None => l.settle(&key, Settled::Uncached, now),
        }
    };
    let revoked = keyer.key("idp", "opaque-revoked");
    assert_eq!(l.find(&revoked, 1, 1_000_000), Found::Ask);
    settle(&mut l, revoked, Answer::Inactive, 1_000);
    assert_eq!(l.find(&revoked, 2, 1_009_999), Found::Answer(&false));
    assert_eq!(
        l.find(&revoked, 3, 1_010_000),
        Found::Ask,
        "negative life: 10 s"
    );
    assert_ne!(keyer.key("idp", "opaque-good"), revoked);
}
