//! The subscription table: which connections get a message published to a
//! topic. Pure data structure, no I/O.
//!
//! Filters live in a tree with one level per node, so routing a message costs
//! the depth of the topic times the wildcard fan-out, not the number of
//! subscriptions (100 000 devices each subscribed to their own response topic
//! share the `cb/v1/` nodes).
//!
//! * `+` matches one level, `#` the rest including the parent level, and a
//!   topic whose first level starts with `$` is not matched by a filter whose
//!   first level is a wildcard (MQTT 3.1.1 §4.7).
//! * `$share/{group}/{filter}` joins the group `group` for `filter`: each
//!   matching message goes to exactly one member of the group, round-robin,
//!   preferring members that can take it right now.
//! * A connection that matches through several subscriptions gets the message
//!   once, with the highest granted QoS and the identifiers of every matching
//!   subscription (MQTT 5 §3.3.4).
//! * No Local subscriptions (MQTT 5) do not get their own connection's
//!   messages.

use std::collections::{BTreeMap, HashMap, HashSet};

use rumqttc::QoS;

use crate::message::SubOpts;
use crate::topic::parse_filter;

/// A connection, as the router knows it.
pub(crate) type ConnId = u64;

/// One copy of a message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The receiving connection.
    pub conn: ConnId,
    /// The QoS granted to the matching subscription (the message goes out at
    /// the lower of this and the published QoS).
    pub qos: QoS,
    /// A matching subscription asked for Retain As Published.
    pub retain_as_published: bool,
    /// Identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
}

impl Target {
    fn new(conn: ConnId, opts: &SubOpts) -> Target {
        Target {
            conn,
            qos: opts.qos,
            retain_as_published: opts.retain_as_published,
            sub_ids: opts.sub_id.into_iter().collect(),
        }
    }
}

/// Subscriptions of every connection.
#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    /// The raw filters (as subscribed, including `$share/...`) of each connection.
    by_conn: HashMap<ConnId, HashSet<String>>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// Ordinary subscriptions whose filter ends at this node.
    plain: HashMap<ConnId, SubOpts>,
    /// Shared subscriptions whose filter ends at this node, by group name.
    groups: BTreeMap<String, Group>,
}

#[derive(Debug, Default)]
struct Group {
    members: Vec<(ConnId, SubOpts)>,
    /// Index of the member to try first next time.
    next: usize,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plain.is_empty() && self.groups.is_empty()
    }

    /// Removes `conn`'s subscription at the node `levels` below this one;
    /// prunes nodes left empty. Returns whether something was removed.
    fn remove(&mut self, levels: &[&str], conn: ConnId, group: Option<&str>) -> bool {
        match levels.split_first() {
            None => match group {
                None => self.plain.remove(&conn).is_some(),
                Some(name) => {
                    let Some(g) = self.groups.get_mut(name) else {
                        return false;
                    };
                    let before = g.members.len();
                    g.members.retain(|(c, _)| *c != conn);
                    let removed = g.members.len() != before;
                    if g.members.is_empty() {
                        self.groups.remove(name);
                    } else if g.next >= g.members.len() {
                        g.next = 0;
                    }
                    removed
                }
            },
            Some((head, rest)) => {
                let Some(child) = self.children.get_mut(*head) else {
                    return false;
                };
                let removed = child.remove(rest, conn, group);
                if child.is_empty() {
                    self.children.remove(*head);
                }
                removed
            }
        }
    }

    /// Adds the subscribers of `levels` (the rest of the topic) below this node.
    fn collect(
        &mut self,
        levels: &[&str],
        first_level: bool,
        publisher: ConnId,
        available: &dyn Fn(ConnId) -> bool,
        out: &mut Vec<Target>,
    ) {
        // §4.7.2: `$...` topics are not matched by a leading wildcard.
        let dollar = first_level && levels.first().is_some_and(|l| l.starts_with('$'));
        if !dollar && let Some(rest) = self.children.get_mut("#") {
            rest.emit(publisher, available, out);
        }
        match levels.split_first() {
            None => self.emit(publisher, available, out),
            Some((head, rest)) => {
                if let Some(child) = self.children.get_mut(*head) {
                    child.collect(rest, false, publisher, available, out);
                }
                if !dollar && let Some(child) = self.children.get_mut("+") {
                    child.collect(rest, false, publisher, available, out);
                }
            }
        }
    }

    /// Adds the subscribers whose filter ends here: every plain one and one
    /// member of each group.
    fn emit(
        &mut self,
        publisher: ConnId,
        available: &dyn Fn(ConnId) -> bool,
        out: &mut Vec<Target>,
    ) {
        out.extend(
            self.plain
                .iter()
                .filter(|(conn, opts)| !(opts.no_local && **conn == publisher))
                .map(|(&conn, opts)| Target::new(conn, opts)),
        );
        for group in self.groups.values_mut() {
            if let Some(target) = group.pick(available) {
                out.push(target);
            }
        }
    }
}

impl Group {
    /// The next member in round-robin order that is `available`, or the next
    /// member at all when none is.
    fn pick(&mut self, available: &dyn Fn(ConnId) -> bool) -> Option<Target> {
        let len = self.members.len();
        if len == 0 {
            return None;
        }
        let start = self.next % len;
        let index = (0..len)
            .map(|i| (start + i) % len)
            .find(|&i| self.members.get(i).is_some_and(|(c, _)| available(*c)))
            .unwrap_or(start);
        self.next = (index + 1) % len;
        self.members
            .get(index)
            .map(|(conn, opts)| Target::new(*conn, opts))
    }
}

impl Router {
    /// Subscribes `conn` to `raw` (a filter or `$share/{group}/{filter}`),
    /// replacing the options of an identical earlier subscription (§3.8.4).
    /// Returns `false` (and changes nothing) for an invalid filter.
    pub(crate) fn subscribe(&mut self, conn: ConnId, raw: &str, opts: SubOpts) -> bool {
        let Some(parsed) = parse_filter(raw) else {
            return false;
        };
        let mut node = &mut self.root;
        for level in parsed.filter.split('/') {
            node = node.children.entry(level.to_owned()).or_default();
        }
        match parsed.group {
            None => {
                node.plain.insert(conn, opts);
            }
            Some(name) => {
                let group = node.groups.entry(name.to_owned()).or_default();
                match group.members.iter_mut().find(|(c, _)| *c == conn) {
                    Some(member) => member.1 = opts,
                    None => group.members.push((conn, opts)),
                }
            }
        }
        self.by_conn.entry(conn).or_default().insert(raw.to_owned());
        true
    }

    /// Removes `conn`'s subscription `raw` (spelled exactly as subscribed).
    /// Returns whether there was one.
    pub(crate) fn unsubscribe(&mut self, conn: ConnId, raw: &str) -> bool {
        let Some(filters) = self.by_conn.get_mut(&conn) else {
            return false;
        };
        if !filters.remove(raw) {
            return false;
        }
        if filters.is_empty() {
            self.by_conn.remove(&conn);
        }
        self.remove_from_tree(conn, raw)
    }

    /// Removes every subscription of `conn`. Returns how many there were.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) -> usize {
        let filters = self.by_conn.remove(&conn).unwrap_or_default();
        for raw in &filters {
            self.remove_from_tree(conn, raw);
        }
        filters.len()
    }

    fn remove_from_tree(&mut self, conn: ConnId, raw: &str) -> bool {
        let Some(parsed) = parse_filter(raw) else {
            return false;
        };
        let levels: Vec<&str> = parsed.filter.split('/').collect();
        self.root.remove(&levels, conn, parsed.group)
    }

    /// Fills `out` with the connections that get a message published by
    /// `publisher` to `topic` (a valid topic name), each once. `available`
    /// tells whether a connection can take a message now; shared groups
    /// skip members that cannot.
    pub(crate) fn route(
        &mut self,
        topic: &str,
        publisher: ConnId,
        available: &dyn Fn(ConnId) -> bool,
        out: &mut Vec<Target>,
    ) {
        out.clear();
        let levels: Vec<&str> = topic.split('/').collect();
        self.root.collect(&levels, true, publisher, available, out);
        if out.len() > 1 {
            // One copy per connection: the highest QoS among its matches,
            // every subscription identifier.
            out.sort_unstable_by_key(|t| (t.conn, std::cmp::Reverse(t.qos as u8)));
            out.dedup_by(|later, first| {
                if later.conn != first.conn {
                    return false;
                }
                first.retain_as_published |= later.retain_as_published;
                first.sub_ids.append(&mut later.sub_ids);
                true
            });
        }
    }

    /// Moves every subscription of `from` to `to` (a resumed session on a
    /// new connection).
    pub(crate) fn rekey(&mut self, from: ConnId, to: ConnId) {
        let Some(filters) = self.by_conn.remove(&from) else {
            return;
        };
        for raw in &filters {
            if let Some(opts) = self.options(from, raw) {
                self.remove_from_tree(from, raw);
                self.subscribe(to, raw, opts);
            }
        }
    }

    /// The options of `conn`'s subscription `raw`.
    fn options(&self, conn: ConnId, raw: &str) -> Option<SubOpts> {
        let parsed = parse_filter(raw)?;
        let mut node = &self.root;
        for level in parsed.filter.split('/') {
            node = node.children.get(level)?;
        }
        match parsed.group {
            None => node.plain.get(&conn).copied(),
            Some(name) => node
                .groups
                .get(name)?
                .members
                .iter()
                .find(|(c, _)| *c == conn)
                .map(|(_, o)| *o),
        }
    }

    /// The filters `conn` holds, with their options.
    pub(crate) fn subscriptions(&self, conn: ConnId) -> Vec<(String, SubOpts)> {
        self.by_conn.get(&conn).map_or_else(Vec::new, |filters| {
            filters
                .iter()
                .filter_map(|raw| Some((raw.clone(), self.options(conn, raw)?)))
                .collect()
        })
    }

    /// Number of subscriptions of `conn`.
    #[cfg(test)]
    pub(crate) fn subscriptions_of(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, HashSet::len)
    }

    /// True when nothing is subscribed (and the tree is fully pruned).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_conn.is_empty() && self.root.is_empty()
    }
}

#[cfg(test)]
mod tests;
