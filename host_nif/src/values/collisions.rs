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
    let mut classes = Classes::default();
    let mut seen = std::collections::HashMap::with_capacity(ids.len());
    for id in ids.iter().filter(|id| may_collide(id)) {
        let key = classes.of(nodes, *id);
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

/// What a value is, for Python equality: numbers by value, strings by
/// content, tuples and frozensets by the classes of their items. Items are
/// referred to by class number, so each node adds one small key and memory
/// stays linear in the number of nodes however deeply keys nest.
#[derive(Hash, PartialEq, Eq)]
enum Canon {
    /// Bools, ints, big ints that fit, and integral floats below 1e38.
    Int(i128),
    /// Other big ints, in decimal.
    Big(String),
    /// Other floats, by their bits.
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    /// `None`, `...` and `NotImplemented`.
    Singleton(u8),
    Tuple(Vec<usize>),
    /// Sorted.
    Set(Vec<usize>),
    /// Anything else is only equal to itself here: distinct terms stay distinct.
    Own(usize),
}

/// Classes of values Python considers equal, numbered as met.
#[derive(Default)]
pub(crate) struct Classes {
    of_node: std::collections::HashMap<NodeId, usize>,
    numbers: std::collections::HashMap<Canon, usize>,
}

impl Classes {
    fn intern(&mut self, canon: Canon) -> usize {
        let next = self.numbers.len();
        *self.numbers.entry(canon).or_insert(next)
    }

    /// The class of `root`. Iterative, children first: keys can be nested
    /// deeply, and this runs on a BEAM thread.
    pub(crate) fn of(&mut self, nodes: &[MontyNode], root: NodeId) -> usize {
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.of_node.contains_key(&id) {
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
            let class_of = |c: &NodeId| self.of_node.get(c).copied().unwrap_or(usize::MAX);
            let canon = match node {
                Some(MontyNode::Bool(b)) => Canon::Int(i128::from(*b)),
                Some(MontyNode::Int(i)) => Canon::Int(i128::from(*i)),
                Some(MontyNode::BigInt(i)) => match i128::try_from(i) {
                    Ok(small) => Canon::Int(small),
                    Err(_) => Canon::Big(i.to_string()),
                },
                Some(MontyNode::Float(f))
                    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e38 =>
                {
                    Canon::Int(*f as i128)
                }
                Some(MontyNode::Float(f)) => Canon::Float(f.to_bits()),
                Some(MontyNode::String(s)) => Canon::Str(s.clone()),
                Some(MontyNode::Bytes(b)) => Canon::Bytes(b.clone()),
                Some(MontyNode::None) => Canon::Singleton(0),
                Some(MontyNode::Ellipsis) => Canon::Singleton(1),
                Some(MontyNode::NotImplemented) => Canon::Singleton(2),
                Some(MontyNode::Tuple(items)) => Canon::Tuple(items.iter().map(class_of).collect()),
                Some(MontyNode::FrozenSet(items)) => {
                    let mut classes: Vec<usize> = items.iter().map(class_of).collect();
                    classes.sort_unstable();
                    Canon::Set(classes)
                }
                _ => Canon::Own(id.index()),
            };
            let class = self.intern(canon);
            self.of_node.insert(id, class);
        }
        self.of_node.get(&root).copied().unwrap_or(usize::MAX)
    }
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
    fn deeply_nested_keys_take_linear_memory() {
        let mut graph = MontyGraph::new();
        let mut inner = graph.push(MontyNode::Int(1));
        for _ in 0..200_000 {
            inner = graph.push(MontyNode::Tuple(vec![inner]));
        }
        let two = graph.push(MontyNode::Int(2));
        // Kept one text per level before: 200 000 levels were ~80 GB.
        assert!(check_collisions(graph.nodes(), &[inner, two], "dict keys").is_ok());
        let mut other = graph.push(MontyNode::Float(1.0));
        for _ in 0..200_000 {
            other = graph.push(MontyNode::Tuple(vec![other]));
        }
        assert!(check_collisions(graph.nodes(), &[inner, other], "dict keys").is_err());
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

    #[test]
    fn tuples_with_none_or_bytes_beside_equal_numbers_collide() {
        let mut graph = MontyGraph::new();
        let one = graph.push(MontyNode::Int(1));
        let one_float = graph.push(MontyNode::Float(1.0));
        let none_a = graph.push(MontyNode::None);
        let none_b = graph.push(MontyNode::None);
        let bytes_a = graph.push(MontyNode::Bytes(vec![1, 2]));
        let bytes_b = graph.push(MontyNode::Bytes(vec![1, 2]));
        let other_bytes = graph.push(MontyNode::Bytes(vec![3]));
        let a = graph.push(MontyNode::Tuple(vec![one, none_a, bytes_a]));
        let b = graph.push(MontyNode::Tuple(vec![one_float, none_b, bytes_b]));
        let c = graph.push(MontyNode::Tuple(vec![one_float, none_b, other_bytes]));
        // (1, None, b"\x01\x02") == (1.0, None, b"\x01\x02") in Python.
        assert!(check_collisions(graph.nodes(), &[a, b], "dict keys").is_err());
        assert!(check_collisions(graph.nodes(), &[a, c], "dict keys").is_ok());
    }
}
