//! Linearizability of one product's stock, checked the way Wing & Gong proposed and
//! Lowe and porcupine made practical: walk the history's calls and returns in time
//! order, try to linearize each call as early as the model allows, backtrack when a
//! return comes for a call not yet linearized, and remember every (linearized set,
//! state) pair already explored so no configuration is searched twice.
//!
//! The object is a counter: every unit the product ever received. Restocks add to it,
//! reads return it (with the product's available, reserved and sold, whose sum it is).
//! A restock whose outcome is unknown never returns: it may take effect at any point
//! after it was invoked, or never.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOp {
    Add(u64),
    Read(u64),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub invoke: u64,
    /// `None`: the outcome is unknown (it may have happened, at any time after invoke).
    pub ret: Option<u64>,
    pub op: CounterOp,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Linearizable,
    /// No order of the calls explains the history; the index of the call that could
    /// not be linearized when the search got furthest.
    Violation {
        call: usize,
    },
    /// The search ran out of its step budget.
    Unknown,
}

const NIL: usize = usize::MAX;

struct Event {
    call: usize,
    is_return: bool,
}

/// Checks `calls` against a counter that starts at `initial`; gives up after `budget`
/// search steps.
pub fn check_counter(initial: u64, calls: &[Call], budget: u64) -> Outcome {
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        order.push((c.invoke, false, i));
        if let Some(r) = c.ret {
            order.push((r, true, i));
        }
    }
    // At equal times a call comes before a return: the permissive reading.
    order.sort();
    let events: Vec<Event> = order
        .iter()
        .map(|&(_, is_return, call)| Event { call, is_return })
        .collect();
    let n = events.len();
    // A doubly linked list over the events, with a head sentinel at index n.
    let head = n;
    let mut next = vec![NIL; n + 1];
    let mut prev = vec![NIL; n + 1];
    let mut last = head;
    for (i, p) in prev.iter_mut().enumerate().take(n) {
        next[last] = i;
        *p = last;
        last = i;
    }
    let mut return_of = vec![NIL; calls.len()];
    for (i, e) in events.iter().enumerate() {
        if e.is_return {
            return_of[e.call] = i;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        next[prev[i]] = next[i];
        if next[i] != NIL {
            prev[next[i]] = prev[i];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        next[prev[i]] = i;
        if next[i] != NIL {
            prev[next[i]] = i;
        }
    };

    let words = calls.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let mut state = initial;
    let mut remaining = calls.iter().filter(|c| c.ret.is_some()).count();
    let mut entry = next[head];
    let mut steps = 0u64;
    let mut deepest = (0usize, 0usize);
    while remaining > 0 {
        steps += 1;
        if steps > budget {
            return Outcome::Unknown;
        }
        if entry != NIL && !events[entry].is_return {
            let c = events[entry].call;
            let stepped = match calls[c].op {
                CounterOp::Add(n) => Some(state + n),
                CounterOp::Read(v) => (v == state).then_some(state),
            };
            if let Some(new_state) = stepped {
                let mut lin = linearized.clone();
                lin[c / 64] |= 1 << (c % 64);
                if cache.insert((lin.clone(), new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    linearized = lin;
                    unlink(&mut next, &mut prev, entry);
                    if return_of[c] != NIL {
                        unlink(&mut next, &mut prev, return_of[c]);
                        remaining -= 1;
                    }
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
            continue;
        }
        // A call returned before it could be linearized (or only calls that never
        // return are left ahead): undo the last choice. The call stuck deepest into the
        // history is the one to show when all fails.
        if entry != NIL && stack.len() >= deepest.0 {
            deepest = (stack.len(), events[entry].call);
        }
        let Some((ev, s)) = stack.pop() else {
            return Outcome::Violation { call: deepest.1 };
        };
        let c = events[ev].call;
        state = s;
        linearized[c / 64] &= !(1 << (c % 64));
        if return_of[c] != NIL {
            relink(&mut next, &mut prev, return_of[c]);
            remaining += 1;
        }
        relink(&mut next, &mut prev, ev);
        entry = next[ev];
    }
    Outcome::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(invoke: u64, ret: Option<u64>, op: CounterOp) -> Call {
        Call { invoke, ret, op }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            call(0, Some(1), CounterOp::Add(3)),
            call(2, Some(3), CounterOp::Read(13)),
            call(4, Some(5), CounterOp::Add(2)),
            call(6, Some(7), CounterOp::Read(15)),
        ];
        assert_eq!(check_counter(10, &h, 1_000), Outcome::Linearizable);
    }

    #[test]
    fn a_stale_read_is_caught() {
        // The add finished before the read began, yet the read missed it.
        let h = [
            call(0, Some(1), CounterOp::Add(3)),
            call(2, Some(3), CounterOp::Read(10)),
        ];
        assert_eq!(check_counter(10, &h, 1_000), Outcome::Violation { call: 1 });
    }

    #[test]
    fn concurrent_reads_may_see_either_side() {
        let h = [
            call(0, Some(10), CounterOp::Add(3)),
            call(1, Some(2), CounterOp::Read(13)),
            call(3, Some(4), CounterOp::Read(13)),
        ];
        assert_eq!(check_counter(10, &h, 1_000), Outcome::Linearizable);
        // Seen, then unseen again: no order explains it.
        let h = [
            call(0, Some(10), CounterOp::Add(3)),
            call(1, Some(2), CounterOp::Read(13)),
            call(3, Some(4), CounterOp::Read(10)),
        ];
        assert!(matches!(
            check_counter(10, &h, 1_000),
            Outcome::Violation { .. }
        ));
    }

    #[test]
    fn unknown_adds_may_or_may_not_happen() {
        let never = [
            call(0, None, CounterOp::Add(3)),
            call(5, Some(6), CounterOp::Read(10)),
        ];
        assert_eq!(check_counter(10, &never, 1_000), Outcome::Linearizable);
        let late = [
            call(0, None, CounterOp::Add(3)),
            call(5, Some(6), CounterOp::Read(10)),
            call(7, Some(8), CounterOp::Read(13)),
        ];
        assert_eq!(check_counter(10, &late, 1_000), Outcome::Linearizable);
        // But not undone once seen.
        let undone = [
            call(0, None, CounterOp::Add(3)),
            call(5, Some(6), CounterOp::Read(13)),
            call(7, Some(8), CounterOp::Read(10)),
        ];
        assert!(matches!(
            check_counter(10, &undone, 1_000),
            Outcome::Violation { .. }
        ));
    }

    #[test]
    fn a_lost_acknowledged_add_is_caught() {
        let h = [
            call(0, Some(1), CounterOp::Add(4)),
            call(2, Some(3), CounterOp::Add(1)),
            call(4, Some(5), CounterOp::Read(11)),
        ];
        assert!(matches!(
            check_counter(10, &h, 1_000),
            Outcome::Violation { .. }
        ));
    }
}
