//! Subscription matching benchmark: `cargo bench --bench trie`.
//!
//! Builds a [`Trie`] (SUB side) and a [`MultiTrie`] (PUB side, 1,000 pipes) from 1,000,000
//! distinct random topics of 8 to 24 bytes, then prints build time, memory and the time to
//! match one message. Memory is given two ways: the structure's own estimate of its heap
//! (`heap_bytes`, no allocator overhead) and the growth of the process's resident set while
//! building, measured in a fresh child process per structure so that the two do not share
//! freed memory (Linux only; "n/a" elsewhere).

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use ferromq::pattern::trie::{MultiTrie, Trie};

const SUBSCRIPTIONS: usize = 1_000_000;
const PIPES: u64 = 1_000;
const MESSAGES: usize = 1_000_000;
/// Topic characters: 64 symbols, like the dotted names topics usually are.
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._";

/// xorshift64*: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn text(&mut self, min: usize, max: usize, out: &mut Vec<u8>) {
        let len = min + self.below(max - min + 1);
        out.extend((0..len).map(|_| ALPHABET[self.below(ALPHABET.len())]));
    }
}

/// Byte strings stored back to back.
struct Strings {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Strings {
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// `SUBSCRIPTIONS` distinct topics of 8..=24 bytes.
fn topics() -> Strings {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Distinct by construction: a topic whose hash was seen is skipped. Only hashes are kept
    // (one large allocation, returned to the OS when freed) so that memory freed here is
    // not silently reused by the structures whose RSS growth is measured.
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut seen = HashSet::with_capacity(SUBSCRIPTIONS);
    let mut s = Strings {
        bytes: Vec::with_capacity(SUBSCRIPTIONS * 17),
        ends: Vec::with_capacity(SUBSCRIPTIONS),
    };
    let mut topic = Vec::new();
    while s.len() < SUBSCRIPTIONS {
        topic.clear();
        rng.text(8, 24, &mut topic);
        if seen.insert(hasher.hash_one(&topic)) {
            s.bytes.extend_from_slice(&topic);
            s.ends.push(s.bytes.len());
        }
    }
    s
}

/// Messages that match (a subscribed topic plus 0..=32 bytes) and that (almost surely) do
/// not (random 8..=40 bytes with a first byte outside the alphabet of topics).
fn messages(topics: &Strings) -> (Strings, Strings) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut hit = Strings {
        bytes: Vec::new(),
        ends: Vec::new(),
    };
    let mut miss = Strings {
        bytes: Vec::new(),
        ends: Vec::new(),
    };
    for _ in 0..MESSAGES {
        hit.bytes
            .extend_from_slice(topics.get(rng.below(topics.len())));
        rng.text(0, 32, &mut hit.bytes);
        hit.ends.push(hit.bytes.len());
        // Half the misses share no first byte with any topic, half diverge deeper.
        if rng.below(2) == 0 {
            miss.bytes.push(b'#');
        }
        rng.text(8, 40, &mut miss.bytes);
        miss.ends.push(miss.bytes.len());
    }
    (hit, miss)
}

/// Resident set size in bytes (Linux), if known.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Child mode: build one structure and print "<rss growth in bytes>".
fn child(which: &str) {
    let topics = topics();
    let before = rss();
    match which {
        "trie" => {
            let mut t = Trie::new();
            for i in 0..topics.len() {
                t.add(topics.get(i));
            }
            let after = rss();
            black_box(&t);
            println!(
                "{}",
                after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b))
            );
            std::process::exit(0) // skip the teardown
        }
        _ => {
            let mut t = MultiTrie::new();
            for i in 0..topics.len() {
                t.add(topics.get(i), i as u64 % PIPES);
            }
            let after = rss();
            black_box(&t);
            println!(
                "{}",
                after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b))
            );
            std::process::exit(0)
        }
    }
}

/// RSS growth measured in a fresh child process, formatted.
fn rss_growth(which: &str) -> String {
    let measured = std::env::current_exe().ok().and_then(|exe| {
        let out = Command::new(exe)
            .args(["--rss-child", which])
            .output()
            .ok()?;
        let bytes: u64 = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
        (bytes > 0).then_some(bytes)
    });
    match measured {
        Some(bytes) => format!(
            "{:.1} MiB ({:.0} B/sub)",
            mib(bytes),
            bytes as f64 / SUBSCRIPTIONS as f64
        ),
        None => "n/a".to_string(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        child(args.get(i + 1).map_or("trie", String::as_str));
        return;
    }

    let topics = topics();
    let bytes = topics.bytes.len();
    let (hit, miss) = messages(&topics);
    println!(
        "{SUBSCRIPTIONS} distinct subscriptions, 8-24 bytes (avg {:.1}), {MESSAGES} messages each kind",
        bytes as f64 / SUBSCRIPTIONS as f64
    );

    // ---- Trie (SUB) ----
    let start = Instant::now();
    let mut trie = Trie::new();
    for i in 0..topics.len() {
        trie.add(topics.get(i));
    }
    let trie_build = start.elapsed();
    assert_eq!(trie.len(), SUBSCRIPTIONS);

    let start = Instant::now();
    let mut hits = 0;
    for i in 0..hit.len() {
        hits += usize::from(trie.matches(black_box(hit.get(i))));
    }
    let trie_hit = start.elapsed();
    assert_eq!(hits, MESSAGES);
    let start = Instant::now();
    let mut false_hits = 0;
    for i in 0..miss.len() {
        false_hits += usize::from(trie.matches(black_box(miss.get(i))));
    }
    let trie_miss = start.elapsed();

    let trie_nodes = trie.node_count();
    let trie_heap = trie.heap_bytes() as u64;
    let start = Instant::now();
    for i in 0..topics.len() {
        trie.remove(topics.get(i));
    }
    let trie_teardown = start.elapsed();
    assert!(trie.is_empty() && trie.node_count() == 1);
    drop(trie);

    // ---- MultiTrie (PUB), pipe = i % PIPES ----
    let start = Instant::now();
    let mut multi = MultiTrie::new();
    for i in 0..topics.len() {
        multi.add(topics.get(i), i as u64 % PIPES);
    }
    let multi_build = start.elapsed();
    assert_eq!(multi.len(), SUBSCRIPTIONS);

    let mut out = Vec::new();
    let start = Instant::now();
    let mut delivered = 0;
    for i in 0..hit.len() {
        out.clear();
        multi.match_into(black_box(hit.get(i)), &mut out);
        delivered += out.len();
    }
    let multi_hit = start.elapsed();
    assert!(delivered >= MESSAGES);
    let start = Instant::now();
    let mut misdelivered = 0;
    for i in 0..miss.len() {
        out.clear();
        multi.match_into(black_box(miss.get(i)), &mut out);
        misdelivered += out.len();
    }
    let multi_miss = start.elapsed();

    let multi_nodes = multi.node_count();
    let multi_heap = multi.heap_bytes() as u64;
    let start = Instant::now();
    let mut emptied = 0;
    multi.remove_pipe(7, |_| emptied += 1);
    let remove_pipe = start.elapsed();
    assert_eq!(emptied, SUBSCRIPTIONS / PIPES as usize);
    drop(multi);

    let trie_rss = rss_growth("trie");
    let multi_rss = rss_growth("multi");

    println!();
    println!(
        "| {:<26} | {:>22} | {:>22} |",
        "", "Trie (SUB)", "MultiTrie (PUB, 1000 pipes)"
    );
    println!("|{:-<28}|{:-<24}|{:-<29}|", "", "", "");
    let row = |name: &str, a: String, b: String| println!("| {name:<26} | {a:>22} | {b:>27} |");
    row(
        "build (1M adds)",
        format!(
            "{:.0} ms ({:.0} ns/add)",
            trie_build.as_secs_f64() * 1e3,
            ns_per(trie_build, SUBSCRIPTIONS)
        ),
        format!(
            "{:.0} ms ({:.0} ns/add)",
            multi_build.as_secs_f64() * 1e3,
            ns_per(multi_build, SUBSCRIPTIONS)
        ),
    );
    row("nodes", trie_nodes.to_string(), multi_nodes.to_string());
    row(
        "heap estimate",
        format!(
            "{:.1} MiB ({:.0} B/sub)",
            mib(trie_heap),
            trie_heap as f64 / SUBSCRIPTIONS as f64
        ),
        format!(
            "{:.1} MiB ({:.0} B/sub)",
            mib(multi_heap),
            multi_heap as f64 / SUBSCRIPTIONS as f64
        ),
    );
    row("RSS growth while building", trie_rss, multi_rss);
    row(
        "match, matching msg",
        format!("{:.0} ns", ns_per(trie_hit, MESSAGES)),
        format!("{:.0} ns", ns_per(multi_hit, MESSAGES)),
    );
    row(
        "match, non-matching msg",
        format!("{:.0} ns", ns_per(trie_miss, MESSAGES)),
        format!("{:.0} ns", ns_per(multi_miss, MESSAGES)),
    );
    row(
        "teardown",
        format!("{:.0} ms (1M removes)", trie_teardown.as_secs_f64() * 1e3),
        format!("remove_pipe: {:.1} ms", remove_pipe.as_secs_f64() * 1e3),
    );
    println!();
    println!(
        "non-matching messages that matched anyway: {false_hits} (Trie), {misdelivered} deliveries (MultiTrie)"
    );
}
