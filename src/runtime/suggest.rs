//! "Did you mean …?" for mistyped names: task kinds, config keys, console actions.

/// Optimal string alignment distance: edits, where swapping two neighbours counts as one
/// (so `spni` is one edit from `spin`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in table.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

/// The closest candidate to `input`, if it is close enough to be a plausible typo
/// (at most a third of the longer name's length in edits, and at least one edit allowed).
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let input_lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&input_lower, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| {
            let allowed = (input.chars().count().max(candidate.chars().count()) / 3).max(1);
            *distance <= allowed
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposition_is_one_edit() {
        assert_eq!(edit_distance("spni", "spin"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_finds_plausible_typos_only() {
        let kinds = ["spin", "sleep", "fib", "primes", "hash", "echo", "exec"];
        assert_eq!(closest("spni", kinds), Some("spin"));
        assert_eq!(closest("slep", kinds), Some("sleep"));
        assert_eq!(closest("prime", kinds), Some("primes"));
        assert_eq!(closest("ECHO", kinds), Some("echo"));
        assert_eq!(closest("kubernetes", kinds), None);
    }
}
