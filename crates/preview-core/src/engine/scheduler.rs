//! Which steps of a plan may start ([`Scheduler`]): by their dependencies, in
//! plan order; a failed step's dependents are skipped. Pure: no IO, no clock.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::Step;
use crate::resource::ResourceId;

/// Which steps may start: a step starts once every step it comes `after` has
/// finished; a failed step's dependents (transitively) are skipped. Ids that are
/// not steps of the plan count as finished.
pub(super) struct Scheduler<'p> {
    steps: &'p [Step],
    /// Unfinished prerequisites per step index.
    waiting_on: Vec<usize>,
    /// Step indexes that come after each step id.
    dependents: BTreeMap<&'p ResourceId, Vec<usize>>,
    /// Steps whose prerequisites are all finished, in plan order.
    ready: BTreeSet<usize>,
    pub(super) skipped: Vec<ResourceId>,
}

impl<'p> Scheduler<'p> {
    pub(super) fn new(steps: &'p [Step]) -> Self {
        let index: BTreeMap<&ResourceId, usize> =
            steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
        let mut waiting_on = vec![0; steps.len()];
        let mut dependents: BTreeMap<&ResourceId, Vec<usize>> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            for dep in &step.after {
                if let Some(&d) = index.get(dep)
                    && steps[d].action.is_mutating()
                {
                    waiting_on[i] += 1;
                    dependents.entry(&steps[d].id).or_default().push(i);
                }
            }
        }
        let ready = (0..steps.len())
            .filter(|&i| steps[i].action.is_mutating() && waiting_on[i] == 0)
            .collect();
        Scheduler {
            steps,
            waiting_on,
            dependents,
            ready,
            skipped: Vec::new(),
        }
    }

    pub(super) fn take_ready(&mut self, room: usize) -> Vec<&'p Step> {
        let take: Vec<usize> = self.ready.iter().copied().take(room).collect();
        take.iter()
            .map(|i| {
                self.ready.remove(i);
                &self.steps[*i]
            })
            .collect()
    }

    pub(super) fn finished(&mut self, id: &ResourceId) {
        for i in self.dependents.remove(id).unwrap_or_default() {
            self.waiting_on[i] -= 1;
            if self.waiting_on[i] == 0 {
                self.ready.insert(i);
            }
        }
    }

    pub(super) fn failed(&mut self, id: &ResourceId) {
        let mut stack = self.dependents.remove(id).unwrap_or_default();
        while let Some(i) = stack.pop() {
            if self.waiting_on[i] == usize::MAX {
                continue;
            }
            self.waiting_on[i] = usize::MAX;
            self.skipped.push(self.steps[i].id.clone());
            stack.extend(
                self.dependents
                    .remove(&self.steps[i].id)
                    .unwrap_or_default(),
            );
        }
    }
}
