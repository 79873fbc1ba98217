//! MQTT topic names and filters: validation and wildcard matching (MQTT 3.1.1 §4.7).

/// Longest topic MQTT can carry (a 16-bit length prefix).
const MAX_TOPIC_BYTES: usize = 65_535;

/// Checks a topic name we are about to publish to.
pub fn check_topic(t: &str) -> Result<(), &'static str> {
    if t.is_empty() {
        return Err("empty topic");
    }
    if t.len() > MAX_TOPIC_BYTES {
        return Err("topic longer than 65535 bytes");
    }
    if t.contains(['+', '#']) {
        return Err("wildcard (+ or #) in a publish topic");
    }
    if t.contains('\0') {
        return Err("NUL character in a topic");
    }
    Ok(())
}

/// Checks a subscription filter.
pub fn check_filter(f: &str) -> Result<(), &'static str> {
    if f.is_empty() {
        return Err("empty topic filter");
    }
    if f.len() > MAX_TOPIC_BYTES {
        return Err("topic filter longer than 65535 bytes");
    }
    if f.contains('\0') {
        return Err("NUL character in a topic filter");
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err("# must be the whole last level of a filter");
        }
        if level.contains('+') && *level != "+" {
            return Err("+ must be a whole level of a filter");
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter`. A shared subscription (`$share/<group>/<filter>`)
/// matches like its filter part. Topics starting with `$` are not matched by a leading
/// wildcard (MQTT 3.1.1 §4.7.2).
pub fn matches(topic: &str, filter: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((_group, f)) => f,
            None => return false,
        },
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        for (t, f, want) in [
            ("vscp/a/10/6", "vscp/#", true),
            ("vscp", "vscp/#", true),
            ("vscp/a/10/6", "vscp/+/10/6", true),
            ("vscp/a/10/5", "vscp/+/10/6", false),
            ("vscp/a/10/6", "vscp/+/10", false),
            ("vscp/a", "vscp/a/+", false),
            ("vscp/a/", "vscp/a/+", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "#", true),
            ("$SYS/x", "#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS/x", "$SYS/#", true),
            ("a/b", "$share/g/a/+", true),
            ("a/b", "$share/g", false),
            ("", "#", true),
            ("a//b", "a/+/b", true),
        ] {
            assert_eq!(matches(t, f), want, "{t:?} vs {f:?}");
        }
    }

    #[test]
    fn validation() {
        assert!(check_topic("vscp/FF:00/10/6/").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a/+").is_err());
        assert!(check_topic("a/#").is_err());
        assert!(check_topic("a\0").is_err());
        assert!(check_topic(&"a".repeat(65_536)).is_err());
        for f in ["a/#", "#", "+", "a/+/b", "+/+", "a/b", "$share/g/a/#"] {
            assert!(check_filter(f).is_ok(), "{f}");
        }
        for f in ["", "a#", "a/#/b", "a+/b", "a/b+", "#/a", "a\0"] {
            assert!(check_filter(f).is_err(), "{f}");
        }
    }
}
