//! CPU lists as Linux writes them (`Cpus_allowed_list`: `0-3,6`) and as our tools accept them
//! (also `0+2`, since `,` separates roles in `intentgate-loadtest --cpus`).

/// The CPUs of `text`, in order; `None` when any part is not a CPU or an ascending range, or
/// names a CPU at or above `limit`.
pub fn parse(text: &str, limit: usize) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split([',', '+']) {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => (part.parse().ok()?, part.parse().ok()?),
        };
        if a > b || b >= limit {
            return None;
        }
        cpus.extend(a..=b);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn kernel_and_tool_lists_parse_and_bad_ones_give_none() {
        assert_eq!(parse("0-3,6\n", 64), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse("1+3", 64), Some(vec![1, 3]));
        for bad in ["", "a", "3-1", "0-", "-1", "1,,2"] {
            assert_eq!(parse(bad, 64), None, "{bad:?}");
        }
        assert_eq!(parse("63", 64), Some(vec![63]));
        assert_eq!(parse("64", 64), None);
    }
}
