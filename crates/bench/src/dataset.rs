//! The input of the backup benchmark: a directory shaped like a MongoDB `dbpath`,
//! deterministic from a seed, and a byte-for-byte comparison of two trees.
//!
//! Half of the bytes are incompressible (`collection-*.wt`, random bytes, as
//! WiredTiger's snappy- or zstd-compressed blocks look), half are JSON text, one
//! MongoDB extended-JSON document a line (`export/*.json`: ids, names, addresses,
//! prices, dates), varied enough that zstd level 1 keeps about a quarter of it, plus a
//! few small files (`WiredTiger.turtle`, `mongod.lock`, ...). Each file is generated
//! from its own random generator, seeded from the benchmark's seed and the file's
//! index, so the tree is the same whatever the number of threads that write it.
//!
//! ```no_run
//! # fn demo() -> Result<(), bench::dataset::DatasetError> {
//! use bench::dataset::{Spec, compare_trees, generate};
//!
//! let spec = Spec::new(64 << 20, 1);
//! let summary = generate(std::path::Path::new("/tmp/input"), &spec, &|| false)?;
//! println!("{} files, {} bytes", summary.files, summary.bytes);
//! compare_trees(std::path::Path::new("/tmp/input"), std::path::Path::new("/tmp/out"))?;
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Largest size of one generated data file.
pub const FILE_SIZE: u64 = 32 << 20;
/// Buffer of one write (and of one read when comparing).
const BUF: usize = 1 << 20;

/// Why the input could not be generated, or two trees differ.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The caller asked to stop (interrupted).
    #[error("interrupted")]
    Interrupted,
    /// Two trees differ.
    #[error("{0}")]
    Mismatch(#[from] Mismatch),
}

/// Where two trees first differ (relative path, and byte offset for contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// An entry of the expected tree is missing from the other.
    #[error("{0} is missing from the restored tree")]
    Missing(PathBuf),
    /// The restored tree has an entry the expected one does not.
    #[error("{0} is in the restored tree but not in the input")]
    Extra(PathBuf),
    /// Not the same kind of entry (file, directory, link).
    #[error("{0} is not the same kind of entry (file, directory, link) in both trees")]
    Kind(PathBuf),
    /// Different sizes.
    #[error("{path} has {actual} bytes instead of {expected}")]
    Size {
        /// The file.
        path: PathBuf,
        /// Size in the input.
        expected: u64,
        /// Size restored.
        actual: u64,
    },
    /// Different contents.
    #[error("{path} differs from byte {offset} on")]
    Content {
        /// The file.
        path: PathBuf,
        /// First differing byte.
        offset: u64,
    },
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Bytes of data files in total, half random and half JSON (the small files come on
    /// top, a few hundred bytes).
    pub bytes: u64,
    /// Seed of every random generator.
    pub seed: u64,
    /// Largest data file.
    pub file_size: u64,
}

impl Spec {
    /// `bytes` of data from `seed`, in files of at most [`FILE_SIZE`].
    pub fn new(bytes: u64, seed: u64) -> Spec {
        Spec {
            bytes,
            seed,
            file_size: FILE_SIZE,
        }
    }

    /// The data files: (relative path, size, kind), in a fixed order.
    pub fn files(&self) -> Vec<(PathBuf, u64, Kind)> {
        let random = self.bytes / 2;
        let json = self.bytes - random;
        let mut out = Vec::new();
        for (kind, total) in [(Kind::Random, random), (Kind::Json, json)] {
            let mut left = total;
            let mut i = 0u32;
            while left > 0 {
                let size = left.min(self.file_size.max(1));
                let path = match kind {
                    Kind::Random => PathBuf::from(format!("collection-{i}-{}.wt", self.seed)),
                    Kind::Json => PathBuf::from(format!("export/orders-{i:04}.json")),
                };
                out.push((path, size, kind));
                left -= size;
                i += 1;
            }
        }
        out
    }
}

/// What a data file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Random bytes (incompressible).
    Random,
    /// JSON documents, one a line.
    Json,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files written (data and small files).
    pub files: u64,
    /// Bytes of all files.
    pub bytes: u64,
    /// Bytes of random files.
    pub random_bytes: u64,
    /// Bytes of JSON files.
    pub json_bytes: u64,
}

/// Small files of a `dbpath`, as they are (name, contents).
const SMALL_FILES: &[(&str, &str)] = &[
    (
        "WiredTiger",
        "WiredTiger\nWiredTiger 11.2.0: (December 21, 2023)\n",
    ),
    (
        "WiredTiger.turtle",
        "WiredTiger version string\nWiredTiger 11.2.0: (December 21, 2023)\nWiredTiger version\nmajor=11,minor=2,patch=0\n",
    ),
    ("mongod.lock", ""),
    ("storage.bson", "\u{5}\u{0}\u{0}\u{0}\u{0}"),
    ("journal/WiredTigerLog.0000000001", "journal\n"),
    ("diagnostic.data/metrics.interim", "metrics\n"),
];

/// Writes the tree of `spec` under `root` (created; must not exist or be empty), on
/// as many threads as there are cores. `stop` is polled between buffers.
pub fn generate(
    root: &Path,
    spec: &Spec,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Summary, DatasetError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { op, path, source }
    };
    std::fs::create_dir_all(root.join("export")).map_err(io("creating", &root.join("export")))?;
    let (files, bytes) = write_small_files(root)?;
    let mut summary = Summary {
        files,
        bytes,
        ..Summary::default()
    };

    let files = spec.files();
    write_files(root, &files, spec.seed, stop)?;
    for (_, size, kind) in &files {
        summary.files += 1;
        summary.bytes += size;
        match kind {
            Kind::Random => summary.random_bytes += size,
            Kind::Json => summary.json_bytes += size,
        }
    }
    Ok(summary)
}

/// Writes the small files of a `dbpath` (`WiredTiger.turtle`, `mongod.lock`, ...)
/// under `root`, creating it and their directories: how many, and their bytes.
pub(crate) fn write_small_files(root: &Path) -> Result<(u64, u64), DatasetError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { op, path, source }
    };
    for dir in ["journal", "diagnostic.data"] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).map_err(io("creating", &path))?;
    }
    let (mut files, mut bytes) = (0, 0);
    for (name, contents) in SMALL_FILES {
        let path = root.join(name);
        std::fs::write(&path, contents).map_err(io("writing", &path))?;
        files += 1;
        bytes += contents.len() as u64;
    }
    Ok((files, bytes))
}

/// Writes `files` under `root` (their directories must exist) on as many threads as
/// there are cores, file `i` from its own generator seeded from `seed` and `i`.
pub(crate) fn write_files(
    root: &Path,
    files: &[(PathBuf, u64, Kind)],
    seed: u64,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<(), DatasetError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<Result<(), DatasetError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((rel, size, kind)) = files.get(i) else {
                            return Ok(());
                        };
                        let path = root.join(rel);
                        let seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        write_file(&path, *size, *kind, seed, stop)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(DatasetError::Interrupted)))
            .collect()
    });
    results.into_iter().collect()
}

fn write_file(
    path: &Path,
    size: u64,
    kind: Kind,
    seed: u64,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<(), DatasetError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { op, path, source }
    };
    let mut out = BufWriter::with_capacity(BUF, File::create(path).map_err(io("creating"))?);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut left = size;
    match kind {
        Kind::Random => {
            let mut buf = vec![0u8; BUF];
            while left > 0 {
                if stop() {
                    return Err(DatasetError::Interrupted);
                }
                let n = left.min(BUF as u64) as usize;
                rng.fill_bytes(&mut buf[..n]);
                out.write_all(&buf[..n]).map_err(io("writing"))?;
                left -= n as u64;
            }
        }
        Kind::Json => {
            let mut docs = JsonDocs::new(&mut rng);
            let mut buf = Vec::with_capacity(BUF + 4096);
            while left > 0 {
                if stop() {
                    return Err(DatasetError::Interrupted);
                }
                buf.clear();
                while buf.len() < BUF {
                    docs.push(&mut rng, &mut buf);
                }
                // The last document of the file is cut at the exact size.
                let n = left.min(buf.len() as u64) as usize;
                out.write_all(&buf[..n]).map_err(io("writing"))?;
                left -= n as u64;
            }
        }
    }
    out.flush().map_err(io("writing"))?;
    Ok(())
}

const FIRST: &[&str] = &[
    "Maria", "Jean", "Ahmed", "Yuki", "Olga", "Liam", "Sofia", "Noah", "Chloe", "Mateo", "Aisha",
    "Lucas", "Emma", "Hugo", "Ines", "Kenji", "Lena", "Omar", "Priya", "Rafael", "Sara", "Tomasz",
    "Ugo", "Vera", "Wei", "Xavier", "Yasmin", "Zoe", "Ana", "Bruno", "Carla", "David", "Elif",
    "Felix", "Giulia", "Hana", "Ivan", "Julia", "Karim", "Louise",
];
const LAST: &[&str] = &[
    "Lopez", "Martin", "Nakamura", "Ivanova", "Smith", "Rossi", "Dubois", "Kowalski", "Schmidt",
    "Garcia", "Haddad", "Jensen", "Khan", "Lefebvre", "Moreau", "Novak", "Okafor", "Petit",
    "Quinn", "Ricci", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz", "Zhang", "Andersen",
    "Bernard", "Costa", "Dupont", "Eriksen", "Fischer", "Girard",
];
const CITIES: &[(&str, &str)] = &[
    ("Lyon", "FR"),
    ("Paris", "FR"),
    ("Berlin", "DE"),
    ("Munich", "DE"),
    ("Madrid", "ES"),
    ("Seville", "ES"),
    ("Milan", "IT"),
    ("Rome", "IT"),
    ("Lisbon", "PT"),
    ("Krakow", "PL"),
    ("Osaka", "JP"),
    ("Tokyo", "JP"),
    ("Austin", "US"),
    ("Boston", "US"),
    ("Toronto", "CA"),
    ("Nairobi", "KE"),
];
const STREETS: &[&str] = &[
    "Main", "Oak", "Station", "Church", "Park", "Mill", "River", "Garden", "Victoria", "Market",
    "Lake", "Hill", "School", "Bridge", "Castle", "Forest",
];
const SUFFIX: &[&str] = &["Street", "Road", "Avenue", "Lane", "Way", "Place"];
const ADJ: &[&str] = &[
    "Classic", "Organic", "Wireless", "Compact", "Deluxe", "Vintage", "Smart", "Eco", "Premium",
    "Portable", "Rustic", "Modern",
];
const NOUN: &[&str] = &[
    "Lamp",
    "Backpack",
    "Kettle",
    "Headphones",
    "Chair",
    "Notebook",
    "Blender",
    "Jacket",
    "Teapot",
    "Speaker",
    "Blanket",
    "Watch",
    "Mug",
    "Sneakers",
];
const STATUS: &[&str] = &[
    "pending",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
];
const TAGS: &[&str] = &[
    "gift",
    "express",
    "fragile",
    "bulk",
    "promo",
    "loyalty",
    "first-order",
    "b2b",
];
const WORDS: &[&str] = &[
    "please",
    "leave",
    "the",
    "parcel",
    "at",
    "door",
    "call",
    "before",
    "delivery",
    "ring",
    "twice",
    "neighbour",
    "back",
    "gate",
    "office",
    "reception",
    "after",
    "noon",
    "morning",
    "evening",
    "weekend",
    "only",
    "no",
    "plastic",
    "wrap",
    "as",
    "gift",
    "card",
    "inside",
    "with",
    "love",
    "happy",
    "birthday",
    "thanks",
    "again",
    "fragile",
    "handle",
    "care",
    "urgent",
    "order",
    "for",
    "my",
    "mother",
    "second",
    "floor",
    "left",
    "side",
    "code",
    "is",
    "blue",
    "box",
    "garage",
    "mailbox",
    "invoice",
    "company",
    "name",
    "on",
    "label",
    "reuse",
    "packaging",
    "not",
    "bend",
    "keep",
    "dry",
];
const DOMAINS: &[&str] = &["example.com", "mail.example.org", "shop.example.net"];
const CURRENCY: &[&str] = &["EUR", "USD", "JPY", "GBP"];

/// A stream of order documents in MongoDB extended JSON.
struct JsonDocs {
    /// The 5 "random value" bytes of an ObjectId (per process), as hex.
    machine: String,
    /// Seconds since the epoch of the next `_id` / `createdAt`.
    time: u64,
    /// ObjectId counter.
    counter: u32,
    order: u64,
}

impl JsonDocs {
    fn new(rng: &mut StdRng) -> JsonDocs {
        JsonDocs {
            machine: format!("{:010x}", rng.gen_range(0..1u64 << 40)),
            time: 1_700_000_000 + rng.gen_range(0..50_000_000),
            counter: rng.r#gen(),
            order: rng.gen_range(1_000_000..9_000_000),
        }
    }

    /// Appends one document and its newline to `out`.
    fn push(&mut self, rng: &mut StdRng, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let pick = |rng: &mut StdRng, list: &[&'static str]| list[rng.gen_range(0..list.len())];
        self.time += rng.gen_range(0..4);
        self.counter = self.counter.wrapping_add(1) & 0xff_ffff;
        self.order += 1;
        let first = pick(rng, FIRST);
        let last = pick(rng, LAST);
        let (city, country) = CITIES[rng.gen_range(0..CITIES.len())];
        let (y, mo, d, h, mi, s) = civil(self.time);
        let mut doc = String::with_capacity(1024);
        let _ = write!(
            doc,
            r#"{{"_id":{{"$oid":"{:08x}{}{:06x}"}},"orderNo":{},"customer":{{"name":"{first} {last}","email":"{}.{}{}@{}","phone":"+{} {:03} {:03} {:04}","address":{{"street":"{} {} {}","city":"{city}","zip":"{:05}","country":"{country}"}}}},"items":["#,
            self.time,
            self.machine,
            self.counter,
            self.order,
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
            rng.gen_range(1..100),
            pick(rng, DOMAINS),
            rng.gen_range(1..99),
            rng.gen_range(0..1000),
            rng.gen_range(0..1000),
            rng.gen_range(0..10000),
            rng.gen_range(1..300),
            pick(rng, STREETS),
            pick(rng, SUFFIX),
            rng.gen_range(1000..99999),
        );
        let mut total = 0u64;
        for i in 0..rng.gen_range(1..5) {
            let qty = rng.gen_range(1..6u64);
            let cents = rng.gen_range(199..25_000u64);
            total += qty * cents;
            let _ = write!(
                doc,
                r#"{}{{"sku":"SKU-{:05}","name":"{} {}","qty":{qty},"price":{}.{:02}}}"#,
                if i == 0 { "" } else { "," },
                rng.gen_range(0..100_000),
                pick(rng, ADJ),
                pick(rng, NOUN),
                cents / 100,
                cents % 100
            );
        }
        let _ = write!(
            doc,
            r#"],"total":{}.{:02},"currency":"{}","status":"{}","createdAt":{{"$date":"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z"}},"tags":["{}","{}"],"rating":{},"client":{{"ip":"{}.{}.{}.{}","geo":[{:.6},{:.6}],"session":"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}"}}"#,
            total / 100,
            total % 100,
            pick(rng, CURRENCY),
            pick(rng, STATUS),
            rng.gen_range(0..1000),
            pick(rng, TAGS),
            pick(rng, TAGS),
            rng.gen_range(1..6),
            rng.gen_range(1..224),
            rng.gen_range(0..256),
            rng.gen_range(0..256),
            rng.gen_range(1..255),
            rng.gen_range(-90.0..90.0f64),
            rng.gen_range(-180.0..180.0f64),
            rng.r#gen::<u32>(),
            rng.r#gen::<u16>(),
            rng.gen_range(0..0x1000),
            rng.r#gen::<u16>(),
            rng.gen_range(0..1u64 << 48),
        );
        if rng.gen_bool(0.5) {
            doc.push_str(r#","note":""#);
            for i in 0..rng.gen_range(3..10) {
                if i > 0 {
                    doc.push(' ');
                }
                doc.push_str(pick(rng, WORDS));
            }
            doc.push('"');
        }
        doc.push_str("}\n");
        out.extend_from_slice(doc.as_bytes());
    }
}

/// (year, month, day, hour, minute, second) of a Unix time (UTC), after Howard
/// Hinnant's `civil_from_days`.
fn civil(t: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = t / 86_400;
    let rem = t % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// Total bytes of the regular files under `root` (not following links).
pub fn tree_bytes(root: &Path) -> Result<u64, DatasetError> {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| DatasetError::Io {
            op: "listing",
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| DatasetError::Io {
                op: "listing",
                path: dir.clone(),
                source,
            })?;
            let meta = entry.metadata().map_err(|source| DatasetError::Io {
                op: "reading the metadata of",
                path: entry.path(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Checks that `actual` holds exactly the entries of `expected` (same relative paths,
/// same kinds, same link targets) and that every file has the same bytes; returns the
/// number of bytes compared.
pub fn compare_trees(expected: &Path, actual: &Path) -> Result<u64, DatasetError> {
    let mut compared = 0;
    compare_dir(expected, actual, Path::new(""), &mut compared)?;
    Ok(compared)
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, DatasetError> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Io {
        op: "listing",
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| DatasetError::Io {
            op: "listing",
            path: dir.to_path_buf(),
            source,
        })?;
        names.push(entry.file_name());
    }
    names.sort();
    Ok(names)
}

fn compare_dir(
    expected: &Path,
    actual: &Path,
    rel: &Path,
    compared: &mut u64,
) -> Result<(), DatasetError> {
    let want = sorted_names(&expected.join(rel))?;
    let got = sorted_names(&actual.join(rel))?;
    for name in &got {
        if want.binary_search(name).is_err() {
            return Err(Mismatch::Extra(rel.join(name)).into());
        }
    }
    for name in &want {
        let rel = rel.join(name);
        if got.binary_search(name).is_err() {
            return Err(Mismatch::Missing(rel).into());
        }
        let meta = |root: &Path| {
            let path = root.join(&rel);
            std::fs::symlink_metadata(&path).map_err(|source| DatasetError::Io {
                op: "reading the metadata of",
                path,
                source,
            })
        };
        let (a, b) = (meta(expected)?, meta(actual)?);
        let (ta, tb) = (a.file_type(), b.file_type());
        if ta.is_dir() && tb.is_dir() {
            compare_dir(expected, actual, &rel, compared)?;
        } else if ta.is_symlink() && tb.is_symlink() {
            let link = |root: &Path| {
                let path = root.join(&rel);
                std::fs::read_link(&path).map_err(|source| DatasetError::Io {
                    op: "reading the link",
                    path,
                    source,
                })
            };
            if link(expected)? != link(actual)? {
                return Err(Mismatch::Content {
                    path: rel,
                    offset: 0,
                }
                .into());
            }
        } else if ta.is_file() && tb.is_file() {
            if a.len() != b.len() {
                return Err(Mismatch::Size {
                    path: rel,
                    expected: a.len(),
                    actual: b.len(),
                }
                .into());
            }
            compare_file(&expected.join(&rel), &actual.join(&rel), &rel)?;
            *compared += a.len();
        } else {
            return Err(Mismatch::Kind(rel).into());
        }
    }
    Ok(())
}

fn compare_file(a: &Path, b: &Path, rel: &Path) -> Result<(), DatasetError> {
    let open = |path: &Path| {
        File::open(path).map_err(|source| DatasetError::Io {
            op: "opening",
            path: path.to_path_buf(),
            source,
        })
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; BUF], vec![0u8; BUF]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|source| DatasetError::Io {
            op: "reading",
            path: a.to_path_buf(),
            source,
        })?;
        let nb = read_full(&mut fb, &mut bb).map_err(|source| DatasetError::Io {
            op: "reading",
            path: b.to_path_buf(),
            source,
        })?;
        if ba[..na] != bb[..nb] {
            let at = ba[..na]
                .iter()
                .zip(&bb[..nb])
                .position(|(x, y)| x != y)
                .unwrap_or(na.min(nb));
            return Err(Mismatch::Content {
                path: rel.to_path_buf(),
                offset: offset + at as u64,
            }
            .into());
        }
        if na == 0 {
            return Ok(());
        }
        offset += na as u64;
    }
}

/// Reads until `buf` is full or the end of the file.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> (tempfile::TempDir, Summary) {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            bytes: 3 << 20,
            seed,
            file_size: 1 << 20,
        };
        let s = generate(&dir.path().join("in"), &spec, &|| false).unwrap();
        (dir, s)
    }

    #[test]
    fn accepts_same_seed_as_identical_tree() {
        let (a, sa) = small(7);
        let (b, sb) = small(7);
        assert_eq!(sa, sb);
        assert_eq!(sa.random_bytes + sa.json_bytes, 3 << 20);
        assert_eq!(sa.random_bytes, 3 << 19);
        assert_eq!(tree_bytes(&a.path().join("in")).unwrap(), sa.bytes);
        let n = compare_trees(&a.path().join("in"), &b.path().join("in")).unwrap();
        assert_eq!(n, sa.bytes);
    }

    #[test]
    fn rejects_tree_of_another_seed() {
        let (a, _) = small(7);
        let (b, _) = small(8);
        let e = compare_trees(&a.path().join("in"), &b.path().join("in")).unwrap_err();
        // Different seeds name the random files differently.
        assert!(
            matches!(e, DatasetError::Mismatch(Mismatch::Extra(_))),
            "{e}"
        );
    }

    #[test]
    fn rejects_flipped_byte_missing_and_extra_files() {
        let (a, _) = small(3);
        let (b, _) = small(3);
        let (ra, rb) = (a.path().join("in"), b.path().join("in"));
        let victim = rb.join("export/orders-0001.json");
        let mut bytes = std::fs::read(&victim).unwrap();
        bytes[12_345] ^= 1;
        std::fs::write(&victim, &bytes).unwrap();
        let e = compare_trees(&ra, &rb).unwrap_err();
        assert!(
            matches!(&e, DatasetError::Mismatch(Mismatch::Content { offset: 12_345, path }) if path.ends_with("orders-0001.json")),
            "{e}"
        );
        bytes[12_345] ^= 1;
        std::fs::write(&victim, &bytes[..bytes.len() - 1]).unwrap();
        let e = compare_trees(&ra, &rb).unwrap_err();
        assert!(
            matches!(e, DatasetError::Mismatch(Mismatch::Size { .. })),
            "{e}"
        );
        std::fs::remove_file(&victim).unwrap();
        let e = compare_trees(&ra, &rb).unwrap_err();
        assert!(
            matches!(e, DatasetError::Mismatch(Mismatch::Missing(_))),
            "{e}"
        );
        std::fs::write(&victim, &bytes).unwrap();
        std::fs::write(rb.join("journal/extra"), b"x").unwrap();
        let e = compare_trees(&ra, &rb).unwrap_err();
        assert!(
            matches!(e, DatasetError::Mismatch(Mismatch::Extra(_))),
            "{e}"
        );
    }

    #[test]
    fn accepts_json_that_zstd_level_1_keeps_20_to_30_percent_of() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut docs = JsonDocs::new(&mut rng);
        let mut buf = Vec::new();
        while buf.len() < 4 << 20 {
            docs.push(&mut rng, &mut buf);
        }
        for line in buf
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .take(100)
        {
            serde_json::from_slice::<serde_json::Value>(line).unwrap();
        }
        let packed = zstd::bulk::compress(&buf, 1).unwrap();
        let kept = packed.len() as f64 / buf.len() as f64;
        println!("zstd -1 keeps {kept:.3}");
        assert!((0.2..=0.3).contains(&kept), "zstd -1 keeps {kept:.3}");
    }

    #[test]
    fn accepts_civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
