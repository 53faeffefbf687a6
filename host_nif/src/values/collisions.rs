//! Python keys that are distinct in Python but would be one Elixir term
//! (`1` and `1.0` and `True`, say) are refused instead of silently merged.

use monty_types::unstable::{MontyNode, NodeId};

/// Distinct Elixir terms can be equal in Python (`1`, `1.0` and `true`;
/// `{1}` and `{1.0}`), which would silently merge dict keys or set elements.
/// Refuse that instead.
pub(crate) fn check_collisions(
    nodes: &[MontyNode],
    ids: &[NodeId],
    what: &str,
) -> Result<(), String> {
    // Only numbers (and containers of them) can collide: distinct strings,
    // bytes, paths ... are distinct in Python too.
    let may_collide = |id: &NodeId| {
        matches!(
            nodes.get(id.index()),
            Some(
                MontyNode::Bool(_)
                    | MontyNode::Int(_)
                    | MontyNode::BigInt(_)
                    | MontyNode::Float(_)
                    | MontyNode::Tuple(_)
                    | MontyNode::FrozenSet(_)
            )
        )
    };
    if ids.iter().filter(|id| may_collide(id)).count() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashMap::with_capacity(ids.len());
    for id in ids.iter().filter(|id| may_collide(id)) {
        let key = canonical(nodes, *id);
        if let Some(previous) = seen.insert(key, *id) {
            return Err(format!(
                "{what} {} and {} are equal in Python and would collide",
                python_literal(nodes, previous),
                python_literal(nodes, *id)
            ));
        }
    }
    Ok(())
}

/// A string equal for values Python considers equal (numbers by value,
/// tuples and frozensets by content). Iterative, children first: keys can be
/// nested deeply, and this runs on a BEAM thread.
pub(crate) fn canonical(nodes: &[MontyNode], root: NodeId) -> String {
    let mut memo: std::collections::HashMap<NodeId, String> = std::collections::HashMap::new();
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if memo.contains_key(&id) {
            continue;
        }
        let node = nodes.get(id.index());
        let children: &[NodeId] = match node {
            Some(MontyNode::Tuple(items) | MontyNode::FrozenSet(items)) => items,
            _ => &[],
        };
        if !expanded && !children.is_empty() {
            stack.push((id, true));
            stack.extend(children.iter().map(|child| (*child, false)));
            continue;
        }
        let child = |c: &NodeId| memo.get(c).cloned().unwrap_or_default();
        let text = match node {
            Some(MontyNode::Bool(b)) => format!("n{};", u8::from(*b)),
            Some(MontyNode::Int(i)) => format!("n{i};"),
            Some(MontyNode::BigInt(i)) => format!("n{i};"),
            Some(MontyNode::Float(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e38 => {
                format!("n{};", *f as i128)
            }
            Some(MontyNode::Float(f)) => format!("f{};", f.to_bits()),
            Some(MontyNode::String(s)) => format!("s{}:{s};", s.len()),
            Some(MontyNode::Tuple(items)) => {
                format!("({});", items.iter().map(child).collect::<String>())
            }
            Some(MontyNode::FrozenSet(items)) => {
                let mut parts: Vec<String> = items.iter().map(child).collect();
                parts.sort();
                format!("{{{}}};", parts.concat())
            }
            // Anything else is only equal to itself here: distinct terms stay distinct.
            _ => format!("o{};", id.index()),
        };
        memo.insert(id, text);
    }
    memo.remove(&root).unwrap_or_default()
}

pub(crate) fn python_literal(nodes: &[MontyNode], id: NodeId) -> String {
    match nodes.get(id.index()) {
        Some(MontyNode::Bool(true)) => "True".to_owned(),
        Some(MontyNode::Bool(false)) => "False".to_owned(),
        Some(MontyNode::Int(i)) => i.to_string(),
        Some(MontyNode::BigInt(i)) => i.to_string(),
        Some(MontyNode::Float(f)) => format!("{f:?}"),
        Some(MontyNode::Tuple(_)) => "a tuple".to_owned(),
        Some(MontyNode::FrozenSet(_)) => "a frozenset".to_owned(),
        _ => "a value".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monty_types::unstable::MontyGraph;

    #[test]
    fn equal_numbers_of_different_types_collide() {
        let mut graph = MontyGraph::new();
        let one = graph.push(MontyNode::Int(1));
        let one_float = graph.push(MontyNode::Float(1.0));
        let truth = graph.push(MontyNode::Bool(true));
        let two = graph.push(MontyNode::Int(2));
        let name = graph.push(MontyNode::String("1".to_owned()));
        let nodes = graph.nodes();
        let error = check_collisions(nodes, &[one, one_float], "dict keys").unwrap_err();
        assert!(error.contains("1") && error.contains("1.0"), "{error}");
        assert!(check_collisions(nodes, &[one, truth], "set elements").is_err());
        assert!(check_collisions(nodes, &[one, two, name], "dict keys").is_ok());
    }

    #[test]
    fn containers_of_equal_numbers_collide() {
        let mut graph = MontyGraph::new();
        let one = graph.push(MontyNode::Int(1));
        let a = graph.push(MontyNode::Tuple(vec![one]));
        let one_float = graph.push(MontyNode::Float(1.0));
        let b = graph.push(MontyNode::Tuple(vec![one_float]));
        assert!(check_collisions(graph.nodes(), &[a, b], "dict keys").is_err());
    }
}
