//! `unmatched: low-cardinality`: the heuristic route, then a hard cap on how
//! many distinct values each path position may take per service.
//!
//! Each service has a tree of the route segments it has produced. A node
//! keeps up to `max_path_segment_cardinality` distinct children; when one
//! more shows up, the node collapses: all its children are merged into a
//! single wildcard child, and from then on every segment at that position is
//! the wildcard. So `/products/shoes`, `/products/hats`, ... stay apart while
//! there are few of them, and become `/products/*` once there are too many,
//! whatever the heuristic thought of them. (OBI has the same rule; this is
//! our own implementation.)
//!
//! Memory is bounded: at most [`MAX_NODES`] nodes per service (segments that
//! would need more become wildcards) and [`MAX_SERVICES`] services (the
//! trees are reset when more appear).

use std::collections::HashMap;

/// Nodes one service's tree may hold.
pub(crate) const MAX_NODES: usize = 10_000;
/// Services tracked at once.
pub(crate) const MAX_SERVICES: usize = 1024;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    collapsed: bool,
}

impl Node {
    fn count(&self) -> usize {
        1 + self.children.values().map(Node::count).sum::<usize>()
    }

    /// Moves every child of `self` under one wildcard child.
    fn collapse(&mut self, wildcard: &str, max: usize) {
        if self.collapsed {
            return;
        }
        self.collapsed = true;
        let mut merged = self.children.remove(wildcard).unwrap_or_default();
        for (_, child) in self.children.drain() {
            merged.merge(child, wildcard, max);
        }
        if merged.children.len() > max {
            merged.collapse(wildcard, max);
        }
        self.children.insert(wildcard.into(), merged);
    }

    fn merge(&mut self, other: Node, wildcard: &str, max: usize) {
        for (seg, child) in other.children {
            match self.children.get_mut(&seg) {
                Some(mine) => mine.merge(child, wildcard, max),
                None => {
                    self.children.insert(seg, child);
                }
            }
        }
        if other.collapsed || self.children.len() > max {
            self.collapsed = false;
            self.collapse(wildcard, max);
        }
    }
}

#[derive(Debug)]
struct Tree {
    root: Node,
    nodes: usize,
}

#[derive(Debug)]
pub(crate) struct CardinalityLimiter {
    max: usize,
    wildcard: String,
    /// namespace -> name -> tree.
    services: HashMap<Box<str>, HashMap<Box<str>, Tree>>,
    tracked: usize,
}

impl CardinalityLimiter {
    /// `max` is `routes.max_path_segment_cardinality` (at least 1).
    pub(crate) fn new(max: usize, wildcard: char) -> Self {
        CardinalityLimiter { max: max.max(1), wildcard: wildcard.to_string(), services: HashMap::new(), tracked: 0 }
    }

    /// Replaces `route` by its capped form for the service `(namespace, name)`.
    pub(crate) fn limit(&mut self, namespace: &str, name: &str, route: &mut String) {
        let trimmed = route.trim_matches('/');
        if trimmed.is_empty() {
            return;
        }
        if !self.services.get(namespace).is_some_and(|m| m.contains_key(name)) {
            if self.tracked >= MAX_SERVICES {
                self.services.clear();
                self.tracked = 0;
            }
            self.tracked += 1;
            self.services
                .entry(namespace.into())
                .or_default()
                .insert(name.into(), Tree { root: Node::default(), nodes: 1 });
        }
        let tree = self.services.get_mut(namespace).and_then(|m| m.get_mut(name)).expect("inserted above");
        let mut out = String::with_capacity(route.len() + 1);
        let (max, wildcard) = (self.max, self.wildcard.as_str());
        let mut collapsed = false;
        let mut node = Some(&mut tree.root);
        for seg in trimmed.split('/') {
            out.push('/');
            if seg.is_empty() {
                continue;
            }
            let Some(n) = node.take() else {
                // Out of nodes further up: the rest is wildcards.
                out.push_str(wildcard);
                continue;
            };
            let key = if n.collapsed { wildcard } else { seg };
            if !n.children.contains_key(key) {
                if n.children.len() >= max {
                    n.collapse(wildcard, max);
                    collapsed = true;
                } else if tree.nodes < MAX_NODES {
                    n.children.insert(key.into(), Node::default());
                    tree.nodes += 1;
                } else {
                    out.push_str(wildcard);
                    continue;
                }
            }
            let key = if n.collapsed { wildcard } else { key };
            out.push_str(key);
            node = n.children.get_mut(key);
        }
        if collapsed {
            // Collapsing merges nodes: recount (once per collapse, rare).
            tree.nodes = tree.root.count();
        }
        *route = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(l: &mut CardinalityLimiter, route: &str) -> String {
        let mut r = route.to_string();
        l.limit("ns", "svc", &mut r);
        r
    }

    #[test]
    fn collapses_a_position_once_it_has_too_many_values() {
        let mut l = CardinalityLimiter::new(3, '*');
        assert_eq!(limit(&mut l, "/products/shoes"), "/products/shoes");
        assert_eq!(limit(&mut l, "/products/hats"), "/products/hats");
        assert_eq!(limit(&mut l, "/products/socks"), "/products/socks");
        // The fourth value collapses the position, for old values too.
        assert_eq!(limit(&mut l, "/products/gloves"), "/products/*");
        assert_eq!(limit(&mut l, "/products/shoes"), "/products/*");
        assert_eq!(limit(&mut l, "/products/shoes/reviews"), "/products/*/reviews");
        // Other positions are independent.
        assert_eq!(limit(&mut l, "/orders/list"), "/orders/list");
        assert_eq!(limit(&mut l, "/"), "/");
        assert_eq!(limit(&mut l, ""), "");
    }

    #[test]
    fn merged_subtrees_are_capped_too() {
        let mut l = CardinalityLimiter::new(2, '*');
        limit(&mut l, "/a/x/1");
        limit(&mut l, "/a/y/2");
        limit(&mut l, "/a/y/3");
        // Collapsing /a merges x and y: their children 1, 2, 3 exceed 2.
        assert_eq!(limit(&mut l, "/a/z/4"), "/a/*/*");
        assert_eq!(limit(&mut l, "/a/q/1"), "/a/*/*");
    }

    #[test]
    fn services_are_separate_and_bounded() {
        let mut l = CardinalityLimiter::new(1, '*');
        let mut a = "/p/a".to_string();
        l.limit("", "one", &mut a);
        let mut b = "/p/b".to_string();
        l.limit("", "two", &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("/p/a", "/p/b"));
        for i in 0..MAX_SERVICES + 5 {
            let mut r = "/x".to_string();
            l.limit("", &format!("s{i}"), &mut r);
        }
        assert!(l.tracked <= MAX_SERVICES);
    }

    #[test]
    fn distinct_routes_stay_bounded_for_random_input() {
        let mut l = CardinalityLimiter::new(10, '*');
        let mut seen = std::collections::HashSet::new();
        let mut s = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let route = format!("/{}/{}/{}", s % 7, (s >> 8) % 1000, (s >> 20) % 100_000);
            seen.insert(limit(&mut l, &route));
        }
        // 7 first segments, then at most 10 + wildcard at each level below.
        assert!(seen.len() <= 7 * 11 * 11, "{}", seen.len());
        let tree = &l.services["ns"]["svc"];
        assert!(tree.nodes <= MAX_NODES);
    }
}
