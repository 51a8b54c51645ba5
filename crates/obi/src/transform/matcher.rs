//! Framework-style route patterns matched against URL paths.
//!
//! Pattern syntax (OBI's): `/` separated segments, where `:name` (Gin,
//! Express) and `{name}` (Gorilla, Spring) match any one segment, and a
//! final `*` matches anything below, including nothing (`/user/*` matches
//! `/user`, `/user/1` and `/user/1/x`). Leading and trailing `/` do not
//! matter. A literal segment beats a `*` prefix, which beats a parameter:
//! with `/user/{id}` and `/user/me`, the path `/user/me` gets `/user/me`.
//!
//! Unlike OBI, which commits to a literal segment as soon as it matches, the
//! search backtracks: with `/user/{id}` and `/user/me/settings`, the path
//! `/user/me` still matches `/user/{id}` (OBI leaves it unmatched).

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub(crate) struct RouteMatcher {
    root: Node,
    empty: bool,
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// Pattern that ends exactly here.
    route: Option<Box<str>>,
    /// Pattern ending in `*` here: matches this node and everything below.
    prefix_route: Option<Box<str>>,
    children: HashMap<Box<str>, Node>,
    /// The `:name` / `{name}` child.
    param: Option<Box<Node>>,
}

impl RouteMatcher {
    pub(crate) fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let mut m = RouteMatcher { root: Node::default(), empty: patterns.is_empty() };
        for p in patterns {
            m.insert(p.as_ref());
        }
        m
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    fn insert(&mut self, pattern: &str) {
        let mut node = &mut self.root;
        let mut toks = tokens(pattern);
        while let Some(rest) = toks {
            let (seg, next) = split_first(rest);
            if seg == "*" {
                node.prefix_route = Some(pattern.into());
                return;
            }
            node = if is_param(seg) {
                node.param.get_or_insert_with(Box::default)
            } else {
                node.children.entry(seg.into()).or_default()
            };
            toks = next;
        }
        node.route = Some(pattern.into());
    }

    /// The pattern matching `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<&str> {
        if self.empty {
            return None;
        }
        find(&self.root, tokens(path))
    }
}

fn find<'a>(node: &'a Node, toks: Option<&str>) -> Option<&'a str> {
    let Some(rest) = toks else {
        return node.route.as_deref().or(node.prefix_route.as_deref());
    };
    let (seg, next) = split_first(rest);
    if let Some(child) = node.children.get(seg)
        && let Some(r) = find(child, next)
    {
        return Some(r);
    }
    // OBI's order: a `*` pattern here wins over a parameter.
    if let Some(r) = node.prefix_route.as_deref() {
        return Some(r);
    }
    find(node.param.as_deref()?, next)
}

/// The `/`-separated segments of a path as one string (`None`: no segment):
/// one leading and one trailing `/` are dropped, so `/a/b/` is `a/b` and
/// `//` is a single empty segment.
fn tokens(path: &str) -> Option<&str> {
    let s = path.strip_prefix('/').unwrap_or(path);
    if s.is_empty() {
        return None;
    }
    Some(s.strip_suffix('/').unwrap_or(s))
}

fn split_first(toks: &str) -> (&str, Option<&str>) {
    match toks.split_once('/') {
        Some((seg, rest)) => (seg, Some(rest)),
        None => (toks, None),
    }
}

/// `:name` or `{name}` with `name` made of `[A-Za-z0-9_]` (possibly empty).
fn is_param(seg: &str) -> bool {
    let word = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if let Some(name) = seg.strip_prefix(':') {
        return word(name);
    }
    seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')).is_some_and(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_literals_and_prefixes() {
        let m = RouteMatcher::new(&[
            "/user/{id}",
            "/user/me",
            "/user/:id/orders/:order",
            "/static/*",
            "/basic/:rnd",
            "/api/{version}/items/",
            "/products/{id}/push",
        ]);
        let cases = [
            ("/user/123", Some("/user/{id}")),
            ("/user/123/", Some("/user/{id}")),
            ("/user/me", Some("/user/me")),
            ("/user/7/orders/9", Some("/user/:id/orders/:order")),
            ("/user/7/orders", None),
            ("/user", None),
            ("/static", Some("/static/*")),
            ("/static/css/a.css", Some("/static/*")),
            ("/basic/42", Some("/basic/:rnd")),
            ("/api/v3/items", Some("/api/{version}/items/")),
            ("/products/1/push", Some("/products/{id}/push")),
            ("/products/1/pull", None),
            ("/", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(m.find(path), want, "{path}");
        }
    }

    #[test]
    fn backtracks_from_a_literal_dead_end() {
        let m = RouteMatcher::new(&["/user/{id}", "/user/me/settings"]);
        assert_eq!(m.find("/user/me"), Some("/user/{id}"));
        assert_eq!(m.find("/user/me/settings"), Some("/user/me/settings"));
    }

    #[test]
    fn root_and_catch_all() {
        let m = RouteMatcher::new(&["/", "/*"]);
        assert_eq!(m.find("/"), Some("/"));
        assert_eq!(m.find("/anything/else"), Some("/*"));
        let exact_and_prefix = RouteMatcher::new(&["/user", "/user/*"]);
        assert_eq!(exact_and_prefix.find("/user"), Some("/user"));
        assert_eq!(exact_and_prefix.find("/user/1"), Some("/user/*"));
    }

    #[test]
    fn parameter_syntax() {
        assert!(is_param(":id") && is_param("{id}") && is_param(":") && is_param("{}") && is_param("{user_id2}"));
        assert!(!is_param("{id") && !is_param("id}") && !is_param(":a-b") && !is_param("{a.b}") && !is_param("x"));
        // Not a parameter: matched literally.
        let m = RouteMatcher::new(&["/a/{b.c}"]);
        assert_eq!(m.find("/a/{b.c}"), Some("/a/{b.c}"));
        assert_eq!(m.find("/a/x"), None);
    }

    #[test]
    fn empty_matcher() {
        let m = RouteMatcher::new::<&str>(&[]);
        assert!(m.is_empty());
        assert_eq!(m.find("/x"), None);
    }
}
