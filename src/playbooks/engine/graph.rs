//! The order steps run in, from `needs` (a step without it follows the previous step),
//! and the steps an `on_failure: goto` jumps over. Pure logic, no I/O.

use crate::playbooks::definition::Playbook;
use std::collections::HashMap;

/// The dependency graph of one playbook's steps, by position in the file.
#[derive(Debug, Clone)]
pub struct Graph {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    deps: Vec<Vec<usize>>,
}

impl Graph {
    /// Builds the graph of a validated playbook (validation refuses unknown `needs` and
    /// cycles; an unknown name here is ignored).
    pub fn new(pb: &Playbook) -> Graph {
        let ids: Vec<String> = pb.steps.iter().map(|s| s.id.clone()).collect();
        let index: HashMap<String, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let deps = pb
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| match &step.needs {
                Some(needs) => needs.iter().filter_map(|n| index.get(n).copied()).collect(),
                None if i == 0 => Vec::new(),
                None => vec![i - 1],
            })
            .collect();
        Graph { ids, index, deps }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the playbook has no steps.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The position of step `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The steps `step` waits for.
    pub fn deps(&self, step: usize) -> &[usize] {
        &self.deps[step]
    }

    /// Whether `step` depends on `on`, directly or through other steps.
    pub fn depends_on(&self, step: usize, on: usize) -> bool {
        let mut stack = self.deps[step].clone();
        let mut seen = vec![false; self.ids.len()];
        while let Some(d) = stack.pop() {
            if d == on {
                return true;
            }
            if !std::mem::replace(&mut seen[d], true) {
                stack.extend_from_slice(&self.deps[d]);
            }
        }
        false
    }

    /// The steps jumped over when `failed` goes to `target`: those between the two in the
    /// file that depend on `failed`. They are skipped; `target` and everything else runs
    /// as usual (a skipped step counts as finished for the steps waiting on it).
    pub fn jumped_over(&self, failed: usize, target: usize) -> Vec<usize> {
        (failed + 1..target.min(self.ids.len()))
            .filter(|&s| self.depends_on(s, failed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playbook(yaml: &str) -> Playbook {
        serde_norway::from_str(yaml).unwrap()
    }

    const LINEAR_AND_BRANCHES: &str = r#"
id: p
version: 1
trigger: { on: manual }
steps:
  - { id: a, uses: noop }
  - { id: b, uses: noop }
  - { id: c, uses: noop, needs: [] }
  - { id: d, uses: noop, needs: [b, c] }
  - { id: e, uses: noop }
"#;

    #[test]
    fn steps_follow_the_previous_one_unless_needs_says_otherwise() {
        let g = Graph::new(&playbook(LINEAR_AND_BRANCHES));
        assert_eq!(g.deps(0), &[] as &[usize]);
        assert_eq!(g.deps(1), &[0]);
        assert_eq!(g.deps(2), &[] as &[usize]);
        assert_eq!(g.deps(3), &[1, 2]);
        assert_eq!(g.deps(4), &[3]);
        assert!(g.depends_on(4, 0));
        assert!(g.depends_on(3, 2));
        assert!(!g.depends_on(2, 0));
        assert!(!g.depends_on(0, 4));
    }

    #[test]
    fn goto_jumps_over_only_the_failed_steps_dependents() {
        let g = Graph::new(&playbook(LINEAR_AND_BRANCHES));
        // a fails with goto:e: b and d depend on a and lie before e; c does not.
        assert_eq!(g.jumped_over(0, 4), vec![1, 3]);
        // A goto to the very next step jumps over nothing.
        assert_eq!(g.jumped_over(0, 1), Vec::<usize>::new());
    }
}
