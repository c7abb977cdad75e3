//! Subscription matching for SUB/XSUB ([`Trie`]) and PUB/XPUB ([`MultiTrie`]): prefix
//! matching of [RFC 29](https://rfc.zeromq.org/spec/29/).
//!
//! A message matches a subscription when the subscription is a prefix of the message's first
//! frame; the empty subscription matches everything. Both structures are compressed (radix)
//! tries: each edge is labelled with a byte string, a node exists only where a subscription
//! ends or where two subscriptions diverge, and nodes are pruned and merged again on
//! removal. Memory is therefore proportional to the number of distinct prefixes (plus their
//! bytes), never to 256 slots per byte as in a naive trie.
//!
//! All operations are iterative (no recursion), so very long or deeply nested prefixes
//! cannot overflow the stack, including when a trie is dropped.
//!
//! ```
//! use ferromq::pattern::trie::{MultiTrie, Trie};
//!
//! // SUB side: a counted set of prefixes.
//! let mut subs = Trie::new();
//! assert!(subs.add(b"weather."));
//! assert!(subs.matches(b"weather.paris 21C"));
//! assert!(!subs.matches(b"sports"));
//!
//! // PUB side: which pipes want a message.
//! let mut pubs = MultiTrie::new();
//! pubs.add(b"weather.", 1u64);
//! pubs.add(b"weather.paris", 2u64);
//! pubs.add(b"sports", 3u64);
//! let mut out = Vec::new();
//! pubs.match_into(b"weather.paris 21C", &mut out);
//! out.sort();
//! assert_eq!(out, [1, 2]);
//! ```

use std::fmt;
use std::mem;

/// What a trie node holds for the prefix that ends there.
trait Slot: Default {
    /// True if no subscription ends here (the node may then be pruned).
    fn is_vacant(&self) -> bool;
    /// Heap bytes owned by the slot (for memory estimates).
    fn heap_bytes(&self) -> usize;
}

impl Slot for u32 {
    fn is_vacant(&self) -> bool {
        *self == 0
    }

    fn heap_bytes(&self) -> usize {
        0
    }
}

/// The subscribers of one prefix: `(pipe, count)` pairs sorted by pipe, counts >= 1.
/// Most prefixes have a single subscriber, kept inline (no allocation).
#[derive(Default)]
enum PipeSet<P> {
    #[default]
    Empty,
    One((P, u32)),
    Many(Vec<(P, u32)>),
}

impl<P: Copy + Ord> PipeSet<P> {
    fn as_slice(&self) -> &[(P, u32)] {
        match self {
            PipeSet::Empty => &[],
            PipeSet::One(entry) => std::slice::from_ref(entry),
            PipeSet::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [(P, u32)] {
        match self {
            PipeSet::Empty => &mut [],
            PipeSet::One(entry) => std::slice::from_mut(entry),
            PipeSet::Many(v) => v,
        }
    }

    /// Like `binary_search` for `pipe`.
    fn find(&self, pipe: P) -> Result<usize, usize> {
        self.as_slice().binary_search_by(|(p, _)| p.cmp(&pipe))
    }

    /// Inserts `pipe` with a count of 1 at `index` (from [`find`](Self::find)).
    fn insert(&mut self, index: usize, pipe: P) {
        let entry = (pipe, 1);
        *self = match mem::take(self) {
            PipeSet::Empty => PipeSet::One(entry),
            PipeSet::One(other) if index == 0 => PipeSet::Many(vec![entry, other]),
            PipeSet::One(other) => PipeSet::Many(vec![other, entry]),
            PipeSet::Many(mut v) => {
                v.insert(index, entry);
                PipeSet::Many(v)
            }
        };
    }

    /// Removes the entry at `index`.
    fn remove(&mut self, index: usize) {
        *self = match mem::take(self) {
            PipeSet::Empty | PipeSet::One(_) => PipeSet::Empty,
            PipeSet::Many(mut v) => {
                v.remove(index);
                match v.len() {
                    0 => PipeSet::Empty,
                    1 => PipeSet::One(v[0]),
                    _ => {
                        if v.capacity() > 4 && v.len() * 4 <= v.capacity() {
                            v.shrink_to(v.len() * 2);
                        }
                        PipeSet::Many(v)
                    }
                }
            }
        };
    }
}

impl<P> Slot for PipeSet<P> {
    fn is_vacant(&self) -> bool {
        matches!(self, PipeSet::Empty)
    }

    fn heap_bytes(&self) -> usize {
        match self {
            PipeSet::Many(v) => v.capacity() * mem::size_of::<(P, u32)>(),
            _ => 0,
        }
    }
}

/// Labels up to this many bytes are stored inside the node (no allocation, no pointer to
/// follow while matching); longer ones on the heap.
const INLINE_LABEL: usize = 22;

/// An edge label: a byte string, inline when short. 24 bytes either way.
enum Label {
    Inline { len: u8, bytes: [u8; INLINE_LABEL] },
    Heap(Box<[u8]>),
}

impl Label {
    fn new(s: &[u8]) -> Self {
        if s.len() <= INLINE_LABEL {
            let mut bytes = [0; INLINE_LABEL];
            bytes[..s.len()].copy_from_slice(s);
            Label::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Label::Heap(s.into())
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Label::Inline { .. } => 0,
            Label::Heap(b) => b.len(),
        }
    }
}

impl std::ops::Deref for Label {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Label::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Label::Heap(b) => b,
        }
    }
}

/// One node of the radix tree. The root has an empty label; every other node has a
/// non-empty label whose first byte is `first`, and either a non-vacant slot or at least
/// two children. Children are sorted by `first` (distinct).
struct Node<V> {
    label: Label,
    children: Vec<Node<V>>,
    slot: V,
    first: u8,
}

impl<V: Slot> Node<V> {
    fn root() -> Self {
        Node {
            label: Label::new(&[]),
            children: Vec::new(),
            slot: V::default(),
            first: 0,
        }
    }

    fn leaf(label: &[u8]) -> Self {
        Node {
            label: Label::new(label),
            children: Vec::new(),
            slot: V::default(),
            first: label[0],
        }
    }

    /// Finds the child whose label starts with `byte` (`Ok(index)`), or where it would go
    /// (`Err(index)`), like `binary_search`. First bytes are often spread evenly, so the first
    /// probe is interpolated; then a binary search of the side it leaves, so at most
    /// O(log n) probes, and few cache lines touched in large nodes.
    fn child_index(&self, byte: u8) -> Result<usize, usize> {
        let children = &self.children[..];
        let n = children.len();
        if n < 8 {
            return children.binary_search_by_key(&byte, |c| c.first);
        }
        let lo = children[0].first;
        let hi = children[n - 1].first;
        if byte <= lo {
            return if byte == lo { Ok(0) } else { Err(0) };
        }
        if byte >= hi {
            return if byte == hi { Ok(n - 1) } else { Err(n) };
        }
        // lo < byte < hi, so 0 < guess < n - 1.
        let guess = usize::from(byte - lo) * (n - 1) / usize::from(hi - lo);
        let probe = children[guess].first;
        if probe == byte {
            Ok(guess)
        } else if probe < byte {
            let rest = &children[guess + 1..];
            match rest.binary_search_by_key(&byte, |c| c.first) {
                Ok(i) => Ok(guess + 1 + i),
                Err(i) => Err(guess + 1 + i),
            }
        } else {
            children[..guess].binary_search_by_key(&byte, |c| c.first)
        }
    }

    /// Splits this node's label after `at` bytes (0 < at < label.len()): the node keeps the
    /// head, and a new single child takes the tail, the slot and the children.
    fn split(&mut self, at: usize) {
        let tail = Node {
            label: Label::new(&self.label[at..]),
            children: mem::take(&mut self.children),
            slot: mem::take(&mut self.slot),
            first: self.label[at],
        };
        self.label = Label::new(&self.label[..at]);
        self.children = vec![tail];
    }

    /// Merges this node with its only child (the node's slot is vacant).
    fn merge_with_only_child(&mut self) {
        debug_assert!(self.slot.is_vacant() && self.children.len() == 1);
        if let Some(child) = self.children.pop() {
            let mut label = Vec::with_capacity(self.label.len() + child.label.len());
            label.extend_from_slice(&self.label);
            label.extend_from_slice(&child.label);
            self.label = Label::new(&label);
            self.children = child.children;
            self.slot = child.slot;
        }
    }

    fn heap_bytes(&self) -> usize {
        self.label.heap_bytes()
            + self.children.capacity() * mem::size_of::<Self>()
            + self.slot.heap_bytes()
    }
}

/// The radix tree shared by [`Trie`] and [`MultiTrie`].
struct Radix<V: Slot> {
    root: Node<V>,
    /// Nodes, root included.
    nodes: usize,
    /// Nodes with a non-vacant slot (distinct prefixes).
    prefixes: usize,
}

impl<V: Slot> Radix<V> {
    fn new() -> Self {
        Radix {
            root: Node::root(),
            nodes: 1,
            prefixes: 0,
        }
    }

    /// The slot of `key`, creating (or splitting) nodes as needed. The caller must make the
    /// slot non-vacant (and count it in `prefixes`).
    fn slot_mut(&mut self, key: &[u8]) -> &mut V {
        let mut node = &mut self.root;
        let mut rest = key;
        loop {
            let Some(&byte) = rest.first() else {
                return &mut node.slot;
            };
            match node.child_index(byte) {
                Err(i) => {
                    node.children.insert(i, Node::leaf(rest));
                    self.nodes += 1;
                    return &mut node.children[i].slot;
                }
                Ok(i) => {
                    let child = &mut node.children[i];
                    let common = common_prefix_len(&child.label, rest);
                    if common < child.label.len() {
                        child.split(common);
                        self.nodes += 1;
                    }
                    rest = &rest[common..];
                    node = child;
                }
            }
        }
    }

    /// The child indices leading from the root to the node of exactly `key`.
    fn find_path(&self, key: &[u8], path: &mut Vec<usize>) -> bool {
        path.clear();
        let mut node = &self.root;
        let mut rest = key;
        while let Some(&byte) = rest.first() {
            let Ok(i) = node.child_index(byte) else {
                return false;
            };
            let child = &node.children[i];
            if !rest.starts_with(&child.label) {
                return false;
            }
            path.push(i);
            rest = &rest[child.label.len()..];
            node = child;
        }
        true
    }

    fn node_mut<'a>(root: &'a mut Node<V>, path: &[usize]) -> &'a mut Node<V> {
        let mut node = root;
        for &i in path {
            node = &mut node.children[i];
        }
        node
    }

    /// The slot of the node at `path` (from [`find_path`](Self::find_path)).
    fn slot_at(&mut self, path: &[usize]) -> &mut V {
        &mut Self::node_mut(&mut self.root, path).slot
    }

    /// Restores the invariants after the slot at `path` became vacant: removes the node or
    /// merges it with its only child, then merges a parent left with one child.
    fn vacate(&mut self, path: &[usize]) {
        self.prefixes -= 1;
        let Some((&last, parent_path)) = path.split_last() else {
            return; // the root always stays
        };
        let parent = Self::node_mut(&mut self.root, parent_path);
        let node = &mut parent.children[last];
        debug_assert!(node.slot.is_vacant());
        match node.children.len() {
            0 => {
                parent.children.remove(last);
                self.nodes -= 1;
                if parent.children.capacity() > 4
                    && parent.children.len() * 4 <= parent.children.capacity()
                {
                    parent.children.shrink_to(parent.children.len() * 2);
                }
                let parent_is_root = parent_path.is_empty();
                if !parent_is_root && parent.slot.is_vacant() && parent.children.len() == 1 {
                    parent.merge_with_only_child();
                    self.nodes -= 1;
                }
            }
            1 => {
                node.merge_with_only_child();
                self.nodes -= 1;
            }
            _ => {}
        }
    }

    /// Calls `f` with the slot of every node whose key is a prefix of `data` (root first,
    /// shortest first) until `f` returns true. Returns true if it did.
    fn walk_prefixes(&self, data: &[u8], mut f: impl FnMut(&V) -> bool) -> bool {
        let mut node = &self.root;
        let mut rest = data;
        loop {
            if f(&node.slot) {
                return true;
            }
            let Some(&byte) = rest.first() else {
                return false;
            };
            let Ok(i) = node.child_index(byte) else {
                return false;
            };
            let child = &node.children[i];
            if !rest.starts_with(&child.label) {
                return false;
            }
            rest = &rest[child.label.len()..];
            node = child;
        }
    }

    /// Calls `f(key, slot)` for every node with a non-vacant slot, in lexicographic order
    /// of the keys.
    fn for_each(&self, mut f: impl FnMut(&[u8], &V)) {
        let mut key = Vec::new();
        // (node, length of its parent's key)
        let mut stack = vec![(&self.root, 0usize)];
        while let Some((node, parent_len)) = stack.pop() {
            key.truncate(parent_len);
            key.extend_from_slice(&node.label);
            if !node.slot.is_vacant() {
                f(&key, &node.slot);
            }
            let len = key.len();
            stack.extend(node.children.iter().rev().map(|c| (c, len)));
        }
    }

    fn heap_bytes(&self) -> usize {
        let mut total = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            total += node.heap_bytes();
            stack.extend(node.children.iter());
        }
        total
    }

    fn clear(&mut self) {
        let mut stack = mem::take(&mut self.root.children);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children);
        }
        self.root = Node::root();
        self.nodes = 1;
        self.prefixes = 0;
    }

    /// Checks every structural invariant; returns the number of nodes.
    #[cfg(test)]
    fn check(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![(&self.root, true)];
        let mut prefixes = 0;
        while let Some((node, is_root)) = stack.pop() {
            count += 1;
            if !node.slot.is_vacant() {
                prefixes += 1;
            }
            if is_root {
                assert!(node.label.is_empty());
            } else {
                assert!(!node.label.is_empty());
                assert_eq!(node.first, node.label[0]);
                assert!(
                    !node.slot.is_vacant() || node.children.len() >= 2,
                    "prunable node"
                );
            }
            for pair in node.children.windows(2) {
                assert!(pair[0].first < pair[1].first, "children unsorted");
            }
            stack.extend(node.children.iter().map(|c| (c, false)));
        }
        assert_eq!(count, self.nodes);
        assert_eq!(prefixes, self.prefixes);
        count
    }
}

impl<V: Slot> Drop for Radix<V> {
    fn drop(&mut self) {
        // Iterative, so that deeply nested tries cannot overflow the stack.
        self.clear();
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A counted set of subscription prefixes: what a SUB or XSUB socket filters with.
///
/// Subscribing to the same prefix twice needs two unsubscribes before it is gone, like
/// libzmq. Counts saturate at `u32::MAX`.
///
/// ```
/// use ferromq::pattern::trie::Trie;
///
/// let mut t = Trie::new();
/// assert!(t.add(b"abc"));
/// assert!(!t.add(b"abc")); // counted twice
/// assert!(t.matches(b"abcdef"));
/// assert!(!t.matches(b"ab"));
/// assert!(!t.remove(b"abc"));
/// assert!(t.remove(b"abc")); // gone now
/// assert!(t.is_empty());
/// ```
pub struct Trie {
    radix: Radix<u32>,
    path: Vec<usize>,
}

impl Trie {
    /// An empty trie (it matches nothing).
    pub fn new() -> Self {
        Trie {
            radix: Radix::new(),
            path: Vec::new(),
        }
    }

    /// Subscribes to `prefix`. Returns true if it was not subscribed before (its count went
    /// from 0 to 1).
    pub fn add(&mut self, prefix: &[u8]) -> bool {
        let count = self.radix.slot_mut(prefix);
        *count = count.saturating_add(1);
        let new = *count == 1;
        if new {
            self.radix.prefixes += 1;
        }
        new
    }

    /// Cancels one subscription to `prefix`. Returns true if that was the last one (its count
    /// went from 1 to 0); false if more remain or if `prefix` was not subscribed.
    pub fn remove(&mut self, prefix: &[u8]) -> bool {
        if !self.radix.find_path(prefix, &mut self.path) {
            return false;
        }
        let count = self.radix.slot_at(&self.path);
        if *count == 0 {
            return false;
        }
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.radix.vacate(&self.path);
        true
    }

    /// True if some subscribed prefix is a prefix of `data` (the empty prefix matches any
    /// data).
    pub fn matches(&self, data: &[u8]) -> bool {
        self.radix.walk_prefixes(data, |count| *count > 0)
    }

    /// The number of distinct subscribed prefixes.
    pub fn len(&self) -> usize {
        self.radix.prefixes
    }

    /// True if nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.radix.prefixes == 0
    }

    /// Calls `f` once for each distinct subscribed prefix, in lexicographic order (to re-send
    /// subscriptions after a reconnect).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.radix.for_each(|key, _| f(key));
    }

    /// Removes every subscription.
    pub fn clear(&mut self) {
        self.radix.clear();
    }

    /// The number of nodes of the radix tree, root included (1 when empty). At most
    /// `2 * len() + 1`.
    pub fn node_count(&self) -> usize {
        self.radix.nodes
    }

    /// An estimate of the heap memory used, in bytes: node arrays and labels, without the
    /// allocator's own overhead.
    pub fn heap_bytes(&self) -> usize {
        self.radix.heap_bytes() + self.path.capacity() * mem::size_of::<usize>()
    }
}

impl Default for Trie {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Trie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        self.for_each(|prefix| {
            set.entry(&String::from_utf8_lossy(prefix));
        });
        set.finish()
    }
}

/// Subscription prefixes with the set of pipes (subscribers) of each: what a PUB or XPUB
/// socket routes with. `P` identifies a pipe (a peer id such as `u64`).
///
/// Subscriptions are counted per `(prefix, pipe)` like libzmq: a pipe that subscribes twice
/// to a prefix must cancel twice. Counts saturate at `u32::MAX`.
///
/// ```
/// use ferromq::pattern::trie::MultiTrie;
///
/// let mut t = MultiTrie::new();
/// assert!(t.add(b"a", 1u32)); // first pipe on "a": XPUB forwards it upstream
/// assert!(!t.add(b"a", 2));
/// assert!(t.add(b"ab", 2));
/// let mut out = Vec::new();
/// t.match_into(b"abc", &mut out);
/// out.sort();
/// assert_eq!(out, [1, 2]); // pipe 2 only once
/// let mut gone = Vec::new();
/// t.remove_pipe(2, |prefix| gone.push(prefix.to_vec()));
/// assert_eq!(gone, [b"ab".to_vec()]); // "a" still has pipe 1
/// assert!(t.remove(b"a", 1));
/// assert!(t.is_empty());
/// ```
pub struct MultiTrie<P> {
    radix: Radix<PipeSet<P>>,
    path: Vec<usize>,
}

impl<P: Copy + Ord> MultiTrie<P> {
    /// An empty trie.
    pub fn new() -> Self {
        MultiTrie {
            radix: Radix::new(),
            path: Vec::new(),
        }
    }

    /// Subscribes `pipe` to `prefix`. Returns true if `prefix` had no pipe before (an XPUB
    /// then forwards the subscription upstream).
    pub fn add(&mut self, prefix: &[u8], pipe: P) -> bool {
        let pipes = self.radix.slot_mut(prefix);
        match pipes.find(pipe) {
            Ok(i) => {
                let count = &mut pipes.as_mut_slice()[i].1;
                *count = count.saturating_add(1);
                false
            }
            Err(i) => {
                let was_vacant = pipes.is_vacant();
                pipes.insert(i, pipe);
                if was_vacant {
                    self.radix.prefixes += 1;
                }
                was_vacant
            }
        }
    }

    /// Cancels one subscription of `pipe` to `prefix`. Returns true if `prefix` now has no
    /// pipe at all (it had one before); false otherwise, including when `pipe` was not
    /// subscribed to `prefix`.
    pub fn remove(&mut self, prefix: &[u8], pipe: P) -> bool {
        if !self.radix.find_path(prefix, &mut self.path) {
            return false;
        }
        let pipes = self.radix.slot_at(&self.path);
        let Ok(i) = pipes.find(pipe) else {
            return false;
        };
        let count = &mut pipes.as_mut_slice()[i].1;
        *count -= 1;
        if *count > 0 {
            return false;
        }
        pipes.remove(i);
        if !pipes.is_vacant() {
            return false;
        }
        self.radix.vacate(&self.path);
        true
    }

    /// Removes every subscription of `pipe` (whatever their counts), calling `f` for each
    /// prefix that is left with no pipe at all, in lexicographic order. This walks the whole
    /// trie, like libzmq.
    pub fn remove_pipe(&mut self, pipe: P, mut f: impl FnMut(&[u8])) {
        // Collect first (keys of the prefixes `pipe` is in), then remove each.
        let mut keys: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        self.radix.for_each(|key, pipes| {
            if pipes.find(pipe).is_ok() {
                keys.extend_from_slice(key);
                ends.push(keys.len());
            }
        });
        let mut start = 0;
        for end in ends {
            let key = &keys[start..end];
            start = end;
            if !self.radix.find_path(key, &mut self.path) {
                continue;
            }
            let pipes = self.radix.slot_at(&self.path);
            let Ok(i) = pipes.find(pipe) else {
                continue;
            };
            pipes.remove(i);
            if pipes.is_vacant() {
                self.radix.vacate(&self.path);
                f(key);
            }
        }
    }

    /// Appends to `out` every pipe subscribed to some prefix of `data`, each pipe once (in
    /// no particular order). One walk down the trie.
    pub fn match_into(&self, data: &[u8], out: &mut Vec<P>) {
        let start = out.len();
        let mut sets = 0;
        self.radix.walk_prefixes(data, |pipes| {
            match pipes {
                PipeSet::Empty => {}
                PipeSet::One((p, _)) => {
                    sets += 1;
                    out.push(*p);
                }
                PipeSet::Many(v) => {
                    sets += 1;
                    out.extend(v.iter().map(|&(p, _)| p));
                }
            }
            false
        });
        if sets > 1 {
            // A pipe may be subscribed to several prefixes of `data`.
            out[start..].sort_unstable();
            let mut kept = start;
            for i in start..out.len() {
                if kept == start || out[kept - 1] != out[i] {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }

    /// The number of distinct prefixes that have at least one pipe.
    pub fn len(&self) -> usize {
        self.radix.prefixes
    }

    /// True if no pipe is subscribed to anything.
    pub fn is_empty(&self) -> bool {
        self.radix.prefixes == 0
    }

    /// Calls `f(prefix, pipes)` for each prefix with at least one pipe, in lexicographic
    /// order; `pipes` is sorted and holds `(pipe, subscription count)` pairs.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[(P, u32)])) {
        self.radix.for_each(|key, pipes| f(key, pipes.as_slice()));
    }

    /// The number of nodes of the radix tree, root included (1 when empty).
    pub fn node_count(&self) -> usize {
        self.radix.nodes
    }

    /// An estimate of the heap memory used, in bytes: node arrays, labels and pipe sets,
    /// without the allocator's own overhead.
    pub fn heap_bytes(&self) -> usize {
        self.radix.heap_bytes() + self.path.capacity() * mem::size_of::<usize>()
    }
}

impl<P: Copy + Ord> Default for MultiTrie<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Copy + Ord + fmt::Debug> fmt::Debug for MultiTrie<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        self.for_each(|prefix, pipes| {
            map.entry(&String::from_utf8_lossy(prefix), &pipes);
        });
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Key lengths of the property tests: short ones collide a lot, long ones exercise
    /// labels stored on the heap (longer than `INLINE_LABEL`).
    const MAX_LENS: [u64; 8] = [1, 2, 3, 4, 6, 8, 30, 50];

    /// xorshift64: a tiny deterministic PRNG for tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// 0..=max_len bytes over a small alphabet, so that prefixes collide a lot.
        fn key(&mut self, max_len: u64, alphabet: u8) -> Vec<u8> {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| b'a' + self.below(alphabet as u64) as u8)
                .collect()
        }

        /// Data to match: random, or a known key cut short or extended.
        fn probe<'a>(
            &mut self,
            mut keys: impl ExactSizeIterator<Item = &'a Vec<u8>>,
            max_len: u64,
            alphabet: u8,
        ) -> Vec<u8> {
            let n = keys.len() as u64;
            if n == 0 || self.below(2) == 0 {
                return self.key(max_len + 2, alphabet);
            }
            let mut data = keys.nth(self.below(n) as usize).unwrap().clone();
            data.truncate(self.below(data.len() as u64 + 1) as usize);
            let tail = self.key(3, alphabet);
            data.extend(tail);
            data
        }
    }

    fn prefixes_of(t: &Trie) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        t.for_each(|p| v.push(p.to_vec()));
        v
    }

    #[test]
    fn node_and_label_sizes() {
        assert_eq!(mem::size_of::<Label>(), 24);
        // Upper bounds: layout is up to the compiler (today: 56, 24 and 80 bytes).
        assert!(mem::size_of::<Node<u32>>() <= 56);
        assert!(mem::size_of::<PipeSet<u64>>() <= 32);
        assert!(mem::size_of::<Node<PipeSet<u64>>>() <= 88);
        for len in [0, 1, INLINE_LABEL - 1, INLINE_LABEL, INLINE_LABEL + 1, 100] {
            let s: Vec<u8> = (0..len as u8).collect();
            let label = Label::new(&s);
            assert_eq!(&*label, &s[..]);
            assert_eq!(label.heap_bytes() > 0, len > INLINE_LABEL);
        }
    }

    #[test]
    fn long_labels_split_and_merge() {
        let mut t = Trie::new();
        let long: Vec<u8> = (0..100).collect();
        assert!(t.add(&long));
        assert!(t.add(&long[..50]));
        assert!(t.add(&long[..10]));
        assert!(t.add(&[&long[..30], b"x"].concat()));
        t.radix.check();
        assert!(t.matches(&long));
        assert!(t.matches(&long[..60]));
        assert!(!t.matches(&long[..9]));
        assert!(t.remove(&long[..50]));
        assert!(t.remove(&long[..10]));
        assert!(t.remove(&[&long[..30], b"x"].concat()));
        assert_eq!(t.node_count(), 2);
        assert!(t.matches(&long));
        assert!(!t.matches(&long[..99]));
        t.radix.check();
    }

    #[test]
    fn child_index_agrees_with_binary_search() {
        let mut rng = Rng(77);
        for _ in 0..2000 {
            let mut node = Node::<u32>::root();
            let n = rng.below(40) as usize;
            for _ in 0..n {
                let b = rng.next() as u8;
                if let Err(i) = node.child_index(b) {
                    node.children.insert(i, Node::leaf(&[b]));
                }
            }
            for pair in node.children.windows(2) {
                assert!(pair[0].first < pair[1].first);
            }
            for b in 0..=255u8 {
                let expected = node.children.binary_search_by_key(&b, |c| c.first);
                assert_eq!(node.child_index(b), expected);
            }
        }
    }

    #[test]
    fn empty_trie_matches_nothing() {
        let t = Trie::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(!t.matches(b""));
        assert!(!t.matches(b"abc"));
        assert_eq!(t.node_count(), 1);
        assert!(prefixes_of(&t).is_empty());
    }

    #[test]
    fn empty_prefix_matches_everything() {
        let mut t = Trie::new();
        assert!(t.add(b""));
        assert!(t.matches(b""));
        assert!(t.matches(b"anything"));
        assert_eq!(t.len(), 1);
        assert_eq!(prefixes_of(&t), [b"".to_vec()]);
        assert!(t.remove(b""));
        assert!(!t.matches(b"anything"));
        assert!(!t.remove(b""));
    }

    #[test]
    fn prefix_matching() {
        let mut t = Trie::new();
        t.add(b"abc");
        assert!(t.matches(b"abc"));
        assert!(t.matches(b"abcd"));
        assert!(!t.matches(b"ab"));
        assert!(!t.matches(b"abd"));
        assert!(!t.matches(b"xabc"));
        assert!(!t.matches(b""));
    }

    #[test]
    fn counted_subscriptions() {
        let mut t = Trie::new();
        assert!(t.add(b"a"));
        assert!(!t.add(b"a"));
        assert!(!t.add(b"a"));
        assert_eq!(t.len(), 1);
        assert!(!t.remove(b"a"));
        assert!(!t.remove(b"a"));
        assert!(t.matches(b"a"));
        assert!(t.remove(b"a"));
        assert!(!t.matches(b"a"));
        assert!(!t.remove(b"a"));
    }

    #[test]
    fn remove_absent_or_inner_node() {
        let mut t = Trie::new();
        t.add(b"abcd");
        t.add(b"abxy");
        // "ab" exists as a branching node but is not subscribed.
        assert!(!t.remove(b"ab"));
        assert!(!t.remove(b"abc"));
        assert!(!t.remove(b"abcde"));
        assert!(!t.remove(b"zz"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.node_count(), 4);
        assert!(!t.matches(b"ab"));
    }

    #[test]
    fn split_and_merge_keep_structure_minimal() {
        let mut t = Trie::new();
        t.add(b"hello");
        assert_eq!(t.node_count(), 2);
        t.add(b"help");
        assert_eq!(t.node_count(), 4); // root, "hel", "lo", "p"
        t.add(b"hel");
        assert_eq!(t.node_count(), 4); // "hel" becomes a subscription
        t.add(b"h");
        assert_eq!(t.node_count(), 5);
        assert_eq!(
            prefixes_of(&t),
            [
                b"h".to_vec(),
                b"hel".to_vec(),
                b"hello".to_vec(),
                b"help".to_vec()
            ]
        );
        assert!(t.remove(b"hel"));
        assert_eq!(t.node_count(), 5);
        assert!(t.remove(b"help"));
        // "hel" (vacant) merged with "lo": root, "h", "ello"
        assert_eq!(t.node_count(), 3);
        assert!(t.matches(b"hello world"));
        assert!(t.matches(b"hx"));
        assert!(t.remove(b"h"));
        assert_eq!(t.node_count(), 2);
        assert!(!t.matches(b"hx"));
        assert!(t.matches(b"hello"));
        assert!(t.remove(b"hello"));
        assert_eq!(t.node_count(), 1);
        t.radix.check();
    }

    #[test]
    fn binary_prefixes_and_for_each_order() {
        let mut t = Trie::new();
        let keys: [&[u8]; 6] = [b"\xff\x00", b"\x00", b"\x00\x00", b"\xff", b"\x80abc", b""];
        for k in keys {
            assert!(t.add(k));
        }
        let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        sorted.sort();
        assert_eq!(prefixes_of(&t), sorted);
        assert!(t.matches(b"\xff\x00\x01"));
        t.radix.check();
    }

    #[test]
    fn clear_and_debug() {
        let mut t = Trie::new();
        t.add(b"a");
        t.add(b"b");
        assert_eq!(format!("{t:?}"), r#"{"a", "b"}"#);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        assert!(!t.matches(b"a"));
        t.add(b"c");
        assert!(t.matches(b"c"));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Nested prefixes "a", "aa", "aaa", ... make a chain of nodes. Everything (add,
        // match, for_each, remove, drop) runs on a thread with a small stack, which a
        // recursive implementation would overflow.
        const DEPTH: usize = 5_000;
        let worker = std::thread::Builder::new().stack_size(128 * 1024);
        let handle = worker.spawn(|| {
            let key = vec![b'a'; DEPTH];
            let mut t = Trie::new();
            // Longest first: each add then splits the first edge (cheap in debug builds).
            for len in (1..=DEPTH).rev() {
                assert!(t.add(&key[..len]));
            }
            assert_eq!(t.node_count(), DEPTH + 1);
            assert!(t.matches(&key));
            let mut n = 0;
            t.for_each(|_| n += 1);
            assert_eq!(n, DEPTH);
            assert!(t.heap_bytes() > 0);
            assert!(t.remove(&key[..DEPTH / 2]));
            assert_eq!(t.node_count(), DEPTH);
            let mut m = MultiTrie::new();
            for len in (1..=DEPTH).rev() {
                m.add(&key[..len], (len % 3) as u8);
            }
            let mut out = Vec::new();
            m.match_into(&key, &mut out);
            assert_eq!(out, [0, 1, 2]);
            m.remove_pipe(1, |_| {});
            assert_eq!(m.len(), (1..=DEPTH).filter(|len| len % 3 != 1).count());
            drop(t);
            drop(m);
        });
        handle.unwrap().join().unwrap();
    }

    #[test]
    fn multi_add_remove_counts() {
        let mut t = MultiTrie::new();
        assert!(t.add(b"a", 1u64));
        assert!(!t.add(b"a", 1));
        assert!(!t.add(b"a", 2));
        assert_eq!(t.len(), 1);
        assert!(!t.remove(b"a", 3)); // not subscribed
        assert!(!t.remove(b"b", 1)); // no such prefix
        assert!(!t.remove(b"a", 1)); // one left
        assert!(!t.remove(b"a", 1)); // pipe 1 gone, pipe 2 remains
        assert!(!t.remove(b"a", 1));
        assert!(t.remove(b"a", 2));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        assert!(!t.remove(b"a", 2));
    }

    #[test]
    fn multi_match_dedups() {
        let mut t = MultiTrie::new();
        t.add(b"", 5u32);
        t.add(b"a", 1);
        t.add(b"ab", 1);
        t.add(b"ab", 2);
        t.add(b"abc", 3);
        t.add(b"b", 4);
        let mut out = vec![99];
        t.match_into(b"abcd", &mut out);
        out[1..].sort();
        assert_eq!(out, [99, 1, 2, 3, 5]);
        out.clear();
        t.match_into(b"x", &mut out);
        assert_eq!(out, [5]);
        out.clear();
        t.match_into(b"", &mut out);
        assert_eq!(out, [5]);
    }

    #[test]
    fn multi_remove_pipe() {
        let mut t = MultiTrie::new();
        t.add(b"a", 1u16);
        t.add(b"a", 1);
        t.add(b"ab", 1);
        t.add(b"ab", 2);
        t.add(b"b", 1);
        t.add(b"", 1);
        let mut gone = Vec::new();
        t.remove_pipe(1, |p| gone.push(p.to_vec()));
        assert_eq!(gone, [b"".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.match_into(b"abc", &mut out);
        assert_eq!(out, [2]);
        t.remove_pipe(1, |_| panic!("nothing left for pipe 1"));
        t.remove_pipe(2, |p| assert_eq!(p, b"ab"));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        assert_eq!(format!("{t:?}"), "{}");
    }

    /// Random add/remove/match sequences against a naive model (prefix -> count).
    #[test]
    fn trie_matches_naive_model() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for round in 0..60 {
            let alphabet = 2 + (round % 3) as u8;
            let max_len = MAX_LENS[round % MAX_LENS.len()];
            let mut t = Trie::new();
            let mut model: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
            for step in 0..600 {
                let key = rng.key(max_len, alphabet);
                match rng.below(10) {
                    0..=3 => {
                        let c = model.entry(key.clone()).or_insert(0);
                        *c += 1;
                        assert_eq!(t.add(&key), *c == 1);
                    }
                    4..=6 => {
                        let expected = match model.get_mut(&key) {
                            Some(c) => {
                                *c -= 1;
                                *c == 0
                            }
                            None => false,
                        };
                        if expected {
                            model.remove(&key);
                        }
                        assert_eq!(t.remove(&key), expected);
                    }
                    _ => {
                        let data = rng.probe(model.keys(), max_len, alphabet);
                        let expected = model.keys().any(|p| data.starts_with(p));
                        assert_eq!(t.matches(&data), expected, "{data:?}");
                    }
                }
                assert_eq!(t.len(), model.len());
                if step % 50 == 0 {
                    t.radix.check();
                    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
                    assert_eq!(prefixes_of(&t), keys);
                }
            }
            t.radix.check();
            assert!(t.node_count() <= 2 * t.len() + 1);
            // Remove everything (each as many times as counted): back to the bare root.
            let entries: Vec<(Vec<u8>, u32)> = model.into_iter().collect();
            for (key, count) in entries {
                for i in 1..=count {
                    assert_eq!(t.remove(&key), i == count);
                }
            }
            assert!(t.is_empty());
            assert_eq!(t.radix.check(), 1);
            assert_eq!(t.node_count(), 1);
        }
    }

    /// Random operations on a MultiTrie against a naive model ((prefix, pipe) -> count).
    #[test]
    fn multi_trie_matches_naive_model() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for round in 0..60 {
            let alphabet = 2 + (round % 3) as u8;
            let max_len = MAX_LENS[round % MAX_LENS.len()];
            let pipes = 1 + (round % 5) as u64;
            let mut t = MultiTrie::new();
            let mut model: BTreeMap<(Vec<u8>, u64), u32> = BTreeMap::new();
            let has_pipe = |model: &BTreeMap<(Vec<u8>, u64), u32>, key: &[u8]| {
                model.keys().any(|(k, _)| k == key)
            };
            for step in 0..600 {
                let key = rng.key(max_len, alphabet);
                let pipe = rng.below(pipes);
                match rng.below(20) {
                    0..=7 => {
                        let was = has_pipe(&model, &key);
                        *model.entry((key.clone(), pipe)).or_insert(0) += 1;
                        assert_eq!(t.add(&key, pipe), !was);
                    }
                    8..=13 => {
                        let mut changed = false;
                        if let Some(c) = model.get_mut(&(key.clone(), pipe)) {
                            *c -= 1;
                            if *c == 0 {
                                model.remove(&(key.clone(), pipe));
                                changed = true;
                            }
                        }
                        let expected = changed && !has_pipe(&model, &key);
                        assert_eq!(t.remove(&key, pipe), expected);
                    }
                    14 => {
                        let before: BTreeSet<Vec<u8>> =
                            model.keys().map(|(k, _)| k.clone()).collect();
                        model.retain(|(_, p), _| *p != pipe);
                        let after: BTreeSet<Vec<u8>> =
                            model.keys().map(|(k, _)| k.clone()).collect();
                        let expected: Vec<Vec<u8>> = before.difference(&after).cloned().collect();
                        let mut gone = Vec::new();
                        t.remove_pipe(pipe, |p| gone.push(p.to_vec()));
                        assert_eq!(gone, expected);
                    }
                    _ => {
                        let keys: Vec<Vec<u8>> = model.keys().map(|(k, _)| k.clone()).collect();
                        let data = rng.probe(keys.iter(), max_len, alphabet);
                        let expected: BTreeSet<u64> = model
                            .keys()
                            .filter(|(k, _)| data.starts_with(k))
                            .map(|&(_, p)| p)
                            .collect();
                        let mut out = Vec::new();
                        t.match_into(&data, &mut out);
                        let n = out.len();
                        let got: BTreeSet<u64> = out.into_iter().collect();
                        assert_eq!(n, got.len(), "duplicate pipes");
                        assert_eq!(got, expected);
                    }
                }
                let distinct: BTreeSet<&Vec<u8>> = model.keys().map(|(k, _)| k).collect();
                assert_eq!(t.len(), distinct.len());
                if step % 50 == 0 {
                    t.radix.check();
                    let mut seen = Vec::new();
                    t.for_each(|k, ps| {
                        for &(p, c) in ps {
                            seen.push(((k.to_vec(), p), c));
                        }
                    });
                    let expected: Vec<((Vec<u8>, u64), u32)> =
                        model.iter().map(|(k, &c)| (k.clone(), c)).collect();
                    assert_eq!(seen, expected);
                }
            }
            t.radix.check();
            // Remove everything: half by remove_pipe, the rest one by one.
            t.remove_pipe(0, |_| {});
            model.retain(|(_, p), _| *p != 0);
            let entries: Vec<((Vec<u8>, u64), u32)> = model.into_iter().collect();
            for ((key, pipe), count) in entries {
                for _ in 0..count {
                    t.remove(&key, pipe);
                }
            }
            assert!(t.is_empty());
            assert_eq!(t.radix.check(), 1);
            assert_eq!(t.node_count(), 1);
        }
    }
}
