//! "Did you mean …?": the nearest known name to a typo.
//!
//! Distance is optimal string alignment (Levenshtein plus adjacent transpositions, so
//! `trian` is one edit from `train`). A suggestion is made only when the distance is small for
//! the name's length, and never for names longer than 64 characters (hostile input). Failing
//! that, two habits of other tools are recognised: separators and case (`weightDecay`,
//! `weight-decay` for `weight_decay`) and a longer spelling that starts with a known name
//! (`batchsize`, `batch_size` for `batch`).

/// Optimal string alignment distance between `a` and `b`, in characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    // Three rolling rows: i-2, i-1, i.
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// The largest distance accepted as a typo of a name of `len` characters.
fn budget(len: usize) -> usize {
    match len {
        0..=1 => 0,
        2..=5 => 1,
        6..=8 => 2,
        _ => 3,
    }
}

/// The known name nearest to `name`, if it is close enough to be a typo.
pub fn nearest<'a, I>(name: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = name.chars().count();
    if len > 64 {
        return None;
    }
    let lower = name.to_lowercase();
    let known: Vec<&'a str> = known.into_iter().filter(|k| *k != name).collect();
    let typo = known.iter().map(|k| (distance(&lower, &k.to_lowercase()), *k)).filter(|&(d, _)| d <= budget(len)).min_by_key(|&(d, _)| d);
    if let Some((_, k)) = typo {
        return Some(k);
    }
    let bare = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    let b = bare(name);
    if let Some(k) = known.iter().find(|k| bare(k) == b) {
        return Some(k);
    }
    // The longest known name of 3+ characters that the given one starts with.
    known.iter().filter(|k| k.len() >= 3 && b.starts_with(&bare(k))).max_by_key(|k| k.len()).copied()
}

/// `did you mean `exp`? ` or an empty string.
pub fn did_you_mean<'a, I>(name: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(name, known).map_or(String::new(), |k| format!("did you mean `{k}`? "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("exq", "exp"), 1);
        assert_eq!(distance("trian", "train"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let shr = ["lin", "exp", "inv", "hinge"];
        assert_eq!(nearest("exq", shr), Some("exp"));
        assert_eq!(nearest("EXP", shr), Some("exp"));
        assert_eq!(nearest("zzz", shr), None);
        assert_eq!(nearest("deepfol", ["deepfool", "linear"]), Some("deepfool"));
        assert_eq!(nearest("e", ["c", "d", "clip"]), None);
        assert_eq!(nearest("epochz", ["epochs", "batch"]), Some("epochs"));
        assert_eq!(nearest(&"x".repeat(100), ["x"]), None);
        let train = ["epochs", "batch", "lr", "weight_decay", "momentum"];
        assert_eq!(nearest("batchsize", train), Some("batch"));
        assert_eq!(nearest("batch_size", train), Some("batch"));
        assert_eq!(nearest("weightDecay", train), Some("weight_decay"));
        assert_eq!(nearest("weight-decay", train), Some("weight_decay"));
        assert_eq!(nearest("learning_rate", train), None);
    }
}
