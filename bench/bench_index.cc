// Index benchmarks on a large generated fleet (the list), single thread:
//   ingest   ReadTwins (NDJSON text in memory -> Values) and Table::Build (Values -> stored
//            documents + columns), separately and together: MB/s of NDJSON, twins/s
//                                                                         target >= 200 MB/s
//   memory   Table::IndexMemoryBytes (the index without the stored documents) per twin and as a
//            share of the NDJSON size; Table::DocumentMemoryBytes; process RSS  target <= 40 %
//   patch    single-twin Fleet::Patch latency: one tag on a random device  target <= 5 us median
//   bulk     Fleet::Apply with batches of 1k / 10k / 100k patches         target >= 500k/s
//   persist  Serialize / Save / Open / Deserialize time and throughput    target load >= 1 GB/s
//
//   bench_index [--fleet FILE] [--generate N] [--reps N] [--patches N] [--batches B1,B2,...]
//               [--only ingest|patch|bulk|persist] [--index-file PATH] [--top-columns N]
//               [--splice on|off] [--threaded on|off]
//   bench_index --open INDEX [--reps N]
//   bench_index --open INDEX --only patch|bulk [--patches N] [--batches ...] [--hot-devices N]
//               [--threaded on|off]
//
// --splice off sends every patch down the whole-document path (Fleet::set_splice_patches, the
// oracle of the splice fast path) to compare the two; the patch rows say how many patches were
// spliced.
//
// --threaded on starts (and joins) one thread before anything is measured. Until a process has
// started a thread, libstdc++ (GCC 11 and later, with glibc's __libc_single_threaded) copies and
// releases std::shared_ptr with plain increments; afterwards with atomic ones, for good. A
// program that runs the index beside other threads (readers, a job's preparing threads, the
// parallel ingest) pays the atomic ones, so this is its figure; the default (off) is the single
// thread of the list. The patch and bulk rows say which was measured.
//
// --hot-devices N sends the single patches to the first N devices only. With N small (1000) their
// documents and index entries stay in the caches, which separates a patch's own CPU cost from
// the cache and TLB misses of reaching a random twin of the fleet.
//
// FILE defaults to /tmp/fleet1m.ndjson (`twinq gen --devices 1000000 --seed 7 -o FILE`); with
// --generate N a missing FILE is first written with N devices, seed 7. Google Benchmark is not
// used: one setup of a million twins takes minutes, so this is a plain harness that repeats each
// measurement (--reps, default 3) and reports medians. Every timing is taken twice: wall time
// (std::chrono::steady_clock) and this thread's CPU time (CLOCK_THREAD_CPUTIME_ID). On a shared
// machine the wall time includes waiting for the CPU, so targets are judged on CPU time; both
// are printed. The exception is the single-patch latency: a median of per-patch intervals read
// from the steady clock alone, because reading the CPU clock is a system call that costs about
// 1.3 us on the benchmark VM (a quarter of the target), and a median is not moved by the odd
// preemption. Its CPU column is the CPU time of the whole loop per patch.
//
// Ingest re-reads the file before each repetition (untimed) and frees the text before the build,
// so the peak holds the parsed Values and the tables, not the text too. The last repetition builds
// through Fleet(TwinSet) (which is Table::Build for devices and modules plus publishing the
// version), and that fleet is the one the other phases use. Each repetition first times
// Fleet::LoadTwinsText on the text, the streamed ingest, which never holds the Values of the
// whole fleet, and then Fleet::LoadTwinsFile on the file (in the page cache), which is what
// `twinq index build` and the REPL run: the same, with the file mapped instead of copied into a
// padded buffer. Their twins must equal the built fleet's (ids and documents in id order,
// column counts).
//
// Every phase checks its answer before its numbers are printed and exits 1 on a wrong answer:
// the ingested tables hold exactly the parsed documents (sampled rows, ids, FindRow); a patched
// value is visible in a new snapshot both in the stored document and in the tag's column (and not
// in the snapshot taken before); a loaded index serializes to exactly the bytes that were saved.
//
// --top-columns N prints the N columns that take the most index memory (where the memory goes).
// --only PHASE runs the ingest (which every phase needs) and one phase; with a small fleet this
// is the entry point for profilers (perf record, valgrind --tool=callgrind).
// --open INDEX times only Fleet::Open of an index file saved earlier (`twinq index build`), after
// checking once that the opened fleet serializes to the file's bytes and equals Deserialize's.
//
// The last thing printed (stdout) is the result table in Markdown, for bench/BENCHLOG.md.
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "index/column.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "index/table.h"

namespace {

using twinq::Expected;
using twinq::TwinSet;
using twinq::Value;
using twinq::index::Fleet;
using twinq::index::Mutation;
using twinq::index::Snapshot;
using twinq::index::Table;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "bench_index: %s\n", why.c_str());
  std::exit(1);
}

void Check(bool ok, const std::string& what) {
  if (!ok) Die("WRONG ANSWER (no timing is reported): " + what);
}

// ---- time ----------------------------------------------------------------------------------

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall = 0, cpu = 0;  // seconds
};

class Timer {
 public:
  Timer() : wall_(std::chrono::steady_clock::now()), cpu_(ThreadCpuSeconds()) {}
  Timing Elapsed() const {
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count(),
            ThreadCpuSeconds() - cpu_};
  }

 private:
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

struct Stats {
  double median = 0, min = 0, max = 0, p99 = 0;
  size_t n = 0;
};
Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  size_t k = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(v.size())));
  s.p99 = v[std::max<size_t>(k, 1) - 1];
  return s;
}
struct TimingStats {
  Stats wall, cpu;
};
TimingStats Summarize(const std::vector<Timing>& v) {
  std::vector<double> w, c;
  for (const Timing& t : v) {
    w.push_back(t.wall);
    c.push_back(t.cpu);
  }
  return {Summarize(w), Summarize(c)};
}

// ---- memory --------------------------------------------------------------------------------

// VmRSS and VmHWM of this process, in bytes, after returning free heap memory to the system.
struct Rss {
  uint64_t rss = 0, hwm = 0;
};
Rss ReadRss() {
  malloc_trim(0);
  Rss r;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) r.rss = kb * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) r.hwm = kb * 1024;
  }
  return r;
}

// ---- report --------------------------------------------------------------------------------

double MB(uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }

std::string F(const char* f, double a) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}
std::string F(const char* f, double a, double b) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}
std::string F(const char* f, double a, double b, double c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

// One row of the result table.
struct Row {
  std::string metric, wall, cpu, detail, target, met;
};
std::vector<Row> g_rows;
void Report(std::string metric, std::string wall, std::string cpu = "", std::string detail = "",
            std::string target = "", std::string met = "") {
  Row r{std::move(metric), std::move(wall),   std::move(cpu),
        std::move(detail), std::move(target), std::move(met)};
  std::fprintf(stderr, "  %-50s %-22s %-22s %s%s\n", r.metric.c_str(), r.wall.c_str(),
               r.cpu.c_str(), r.detail.c_str(),
               r.target.empty() ? "" : ("  target " + r.target + ": " + r.met).c_str());
  g_rows.push_back(std::move(r));
}
std::string Met(bool ok) { return ok ? "met" : "**missed**"; }

// ---- helpers -------------------------------------------------------------------------------

// prefix + decimal n (snprintf: `"b" + std::to_string(n)` trips GCC 12's -Wrestrict false
// positive at -O3).
std::string Numbered(const char* prefix, long long n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%lld", prefix, n);
  return buf;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die(path + ": cannot read");
  in.seekg(0, std::ios::end);
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) Die(path + ": read failed");
  return bytes;
}

twinq::index::ColumnPath TagPath(const std::string& tag) {
  return {twinq::index::Step{false, "tags", 0}, twinq::index::Step{false, tag, 0}};
}

// The string the index holds for tags.<tag> of device `id`, read from the column (not from the
// stored document).
std::string IndexedTag(const Table& t, const std::string& id, const std::string& tag) {
  auto row = t.FindRow(id);
  if (!row) return "<no row>";
  const twinq::index::Column* c = t.FindExact(TagPath(tag));
  if (c == nullptr) return "<no column>";
  const auto& strings = c->rows(twinq::index::Kind::kString);
  if (!strings.Contains(*row)) return "<absent>";
  return c->dictionary().String(c->codes()[strings.Rank(*row) - 1]);
}

// tags.<tag> of device `id` in the stored document.
std::string DocumentTag(const Table& t, const std::string& id, const std::string& tag) {
  auto row = t.FindRow(id);
  if (!row) return "<no row>";
  Value doc = t.Document(*row);
  const Value* tags = doc.Find("tags");
  const Value* v = tags ? tags->Find(tag) : nullptr;
  return v && v->is_string() ? v->as_string() : "<absent>";
}

void CheckTag(const Snapshot& s, const std::string& id, const std::string& tag,
              const std::string& want) {
  std::string in_doc = DocumentTag(s.devices(), id, tag);
  std::string in_index = IndexedTag(s.devices(), id, tag);
  Check(in_doc == want && in_index == want, "tags." + tag + " of " + id + ": document '" + in_doc +
                                                "', index '" + in_index + "', expected '" + want +
                                                "'");
}

std::vector<std::string> DeviceIds(const Snapshot& s) {
  std::vector<std::string> ids;
  for (uint32_t row : s.devices().order()) ids.emplace_back(s.devices().device_id(row));
  return ids;
}

// ---- options -------------------------------------------------------------------------------

struct Options {
  std::string fleet = "/tmp/fleet1m.ndjson";
  uint64_t generate = 0;
  int reps = 3;
  int patches = 2000;
  std::vector<size_t> batches = {1000, 10000, 100000};
  std::string only;
  std::string index_file;
  int top_columns = 0;
  bool splice = true;
  std::string open;        // --open FILE: time Fleet::Open of an existing index file, nothing else
  size_t hot_devices = 0;  // --hot-devices N: single patches go to the first N devices only
  bool threaded = false;   // --threaded on: a thread was started first (atomic reference counts)
};

// The note the patch and bulk rows end with (see --threaded).
std::string ProcessKind(const Options& o) {
  return o.threaded ? "; threaded process" : "; single-threaded process";
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) Die("unexpected argument '" + a + "' (see the header of bench_index.cc)");
    std::string v = argv[++i];
    if (a == "--fleet") {
      o.fleet = v;
    } else if (a == "--generate") {
      o.generate = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--reps") {
      o.reps = std::max(1, std::atoi(v.c_str()));
    } else if (a == "--patches") {
      o.patches = std::max(1, std::atoi(v.c_str()));
    } else if (a == "--batches") {
      o.batches.clear();
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) {
        o.batches.push_back(std::strtoull(item.c_str(), nullptr, 10));
      }
    } else if (a == "--only") {
      if (v != "ingest" && v != "patch" && v != "bulk" && v != "persist") {
        Die("--only takes ingest, patch, bulk or persist");
      }
      o.only = v;
    } else if (a == "--index-file") {
      o.index_file = v;
    } else if (a == "--splice") {
      if (v != "on" && v != "off") Die("--splice takes on or off");
      o.splice = v == "on";
    } else if (a == "--open") {
      o.open = v;
    } else if (a == "--hot-devices") {
      o.hot_devices = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--threaded") {
      if (v != "on" && v != "off") Die("--threaded takes on or off");
      o.threaded = v == "on";
    } else if (a == "--top-columns") {
      o.top_columns = std::max(0, std::atoi(v.c_str()));
    } else {
      Die("unknown option '" + a + "'");
    }
  }
  if (o.index_file.empty()) o.index_file = o.fleet + ".bench.twinq";
  return o;
}

void MaybeGenerate(const Options& o) {
  if (std::ifstream(o.fleet).good() || o.generate == 0) return;
  std::fprintf(stderr, "generating %s: %llu devices, seed 7\n", o.fleet.c_str(),
               static_cast<unsigned long long>(o.generate));
  std::ofstream out(o.fleet, std::ios::binary);
  twinq::index::FleetSpec spec;
  spec.devices = o.generate;
  spec.seed = 7;
  std::string buf;
  twinq::index::GenerateFleet(spec, [&](std::string_view line) {
    buf.append(line);
    buf += '\n';
    if (buf.size() > (1 << 22)) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  });
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  if (!out) Die(o.fleet + ": cannot write");
}

// ---- ingest and memory ---------------------------------------------------------------------

void CheckTables(const TwinSet& twins, const Table& devices, const Table& modules) {
  Check(!twins.devices.empty(), "the fleet has no devices");
  Check(devices.live_count() == twins.devices.size(), "device count");
  Check(modules.live_count() == twins.modules.size(), "module count");
  std::mt19937_64 rng(7);
  for (int k = 0; k < 2000; ++k) {
    bool mod = !twins.modules.empty() && k % 4 == 3;
    const std::vector<Value>& docs = mod ? twins.modules : twins.devices;
    const Table& t = mod ? modules : devices;
    size_t i = rng() % docs.size();
    uint32_t row = t.order()[i];
    Check(t.Document(row) == docs[i], "stored document of row " + std::to_string(row));
    Check(t.device_id(row) == docs[i].Find("deviceId")->as_string(), "device id");
    auto found = t.FindRow(t.device_id(row), t.module_id(row));
    Check(found && *found == row, "FindRow");
  }
}

// The live documents and ids of a fleet in id order, hashed: the same for two fleets that hold
// the same twins, whatever their row numbers.
uint64_t DocsDigest(const Snapshot& s) {
  uint64_t h = 1469598103934665603ULL;
  std::hash<std::string_view> hash;
  for (const Table* t : {&s.devices(), &s.modules()}) {
    for (uint32_t row : t->order()) {
      for (std::string_view part : {t->device_id(row), t->module_id(row), t->doc_json(row)}) {
        h = (h ^ hash(part)) * 1099511628211ULL;
      }
    }
    h = (h ^ t->columns().size()) * 1099511628211ULL;
  }
  return h;
}

std::unique_ptr<Fleet> Ingest(const Options& o) {
  std::fprintf(stderr, "ingest: %s, %d repetitions\n", o.fleet.c_str(), o.reps);
  Rss rss_start = ReadRss();
  std::vector<Timing> parse, build, total, free_values, free_tables, with_free, streamed, from_file,
      kept;
  uint64_t streamed_digest = 0;
  std::unique_ptr<Fleet> fleet;
  uint64_t bytes = 0, twins_n = 0, devices_n = 0;
  Rss rss_text, rss_values, rss_tables;
  for (int r = 0; r < o.reps; ++r) {
    bool last = r + 1 == o.reps;
    fleet.reset();
    std::string text = ReadFile(o.fleet);  // untimed
    bytes = text.size();
    if (r == 0) rss_text = ReadRss();
    {
      // The streamed ingest that Fleet::LoadTwinsFile runs once it has read the file: each twin
      // is parsed and indexed, then dropped (no TwinSet). Checked against the fleet built below.
      Timer ts;
      Fleet f;
      Expected<size_t> n = f.LoadTwinsText(text, o.fleet);
      streamed.push_back(ts.Elapsed());
      if (!n.ok()) Die(n.error().message);
      uint64_t d = DocsDigest(f.snapshot());
      Check(r == 0 || d == streamed_digest, "streamed ingest differs between repetitions");
      streamed_digest = d;
      Timer tf;
      f.Reset(TwinSet());
      std::fprintf(stderr, "  rep %d: LoadTwinsText %.3f s (cpu %.3f); its fleet freed in %.3f s\n",
                   r + 1, streamed.back().wall, streamed.back().cpu, tf.Elapsed().wall);
    }
    {
      // The same from the file: mapped, not copied (the file is in the page cache: it was read
      // just above).
      Timer ts;
      Fleet f;
      Expected<size_t> n = f.LoadTwinsFile(o.fleet);
      from_file.push_back(ts.Elapsed());
      if (!n.ok()) Die(n.error().message);
      Check(DocsDigest(f.snapshot()) == streamed_digest,
            "LoadTwinsFile differs from LoadTwinsText");
      f.Reset(TwinSet());
      std::fprintf(stderr, "  rep %d: LoadTwinsFile %.3f s (cpu %.3f)\n", r + 1,
                   from_file.back().wall, from_file.back().cpu);
    }
    {
      // As `twinq index build` reads it: the documents the file spells compactly stay in the
      // mapped file (InputDocs::kKeepInput).
      Timer ts;
      Fleet f;
      Expected<size_t> n = f.LoadTwinsFile(o.fleet, Fleet::InputDocs::kKeepInput);
      kept.push_back(ts.Elapsed());
      if (!n.ok()) Die(n.error().message);
      Check(DocsDigest(f.snapshot()) == streamed_digest,
            "LoadTwinsFile keeping the input differs from LoadTwinsText");
      f.Reset(TwinSet());
      std::fprintf(stderr,
                   "  rep %d: LoadTwinsFile, documents kept in the input %.3f s (cpu %.3f)\n",
                   r + 1, kept.back().wall, kept.back().cpu);
    }
    Timer t0;
    Expected<TwinSet> parsed = twinq::ReadTwins(text, o.fleet);
    Timing p = t0.Elapsed();
    if (!parsed.ok()) Die(parsed.error().message);
    text.clear();
    text.shrink_to_fit();
    auto twins = std::make_unique<TwinSet>(std::move(parsed.value()));
    twins_n = twins->devices.size() + twins->modules.size();
    devices_n = twins->devices.size();
    if (r == 0) rss_values = ReadRss();
    Timing b;
    if (!last) {
      Timer t1;
      auto devices = Table::Build(twins->devices, false);
      auto modules = Table::Build(twins->modules, true);
      b = t1.Elapsed();
      if (r == 0) rss_tables = ReadRss();
      if (r == 0) CheckTables(*twins, *devices, *modules);
      Timer t2;
      devices.reset();
      modules.reset();
      free_tables.push_back(t2.Elapsed());
    } else {
      Timer t1;
      fleet = std::make_unique<Fleet>(*twins);
      b = t1.Elapsed();
      if (r == 0) rss_tables = ReadRss();
      Snapshot s = fleet->snapshot();
      CheckTables(*twins, s.devices(), s.modules());
    }
    // Fleet::LoadTwinsFile frees the parsed Values too: that is part of an ingest.
    Timer t3;
    twins.reset();
    Timing f = t3.Elapsed();
    parse.push_back(p);
    build.push_back(b);
    free_values.push_back(f);
    total.push_back({p.wall + b.wall, p.cpu + b.cpu});
    with_free.push_back({p.wall + b.wall + f.wall, p.cpu + b.cpu + f.cpu});
    std::fprintf(stderr,
                 "  rep %d: ReadTwins %.3f s (cpu %.3f), %s %.3f s (cpu %.3f), freeing the Values "
                 "%.3f s (cpu %.3f)\n",
                 r + 1, p.wall, p.cpu, last ? "Fleet(TwinSet)" : "Table::Build", b.wall, b.cpu,
                 f.wall, f.cpu);
  }
  double mb = MB(bytes);
  auto row = [&](const std::string& name, const std::vector<Timing>& v, bool target) {
    TimingStats s = Summarize(v);
    double mbs = mb / s.cpu.median;
    Report(name, F("%.2f s = %.1f MB/s", s.wall.median, mb / s.wall.median),
           F("%.2f s = %.1f MB/s", s.cpu.median, mbs),
           F("%.0f twins/s (cpu); cpu range %.2f-%.2f s",
             static_cast<double>(twins_n) / s.cpu.median, s.cpu.min, s.cpu.max),
           target ? ">= 200 MB/s" : "", target ? Met(mbs >= 200) : "");
  };
  row("ingest: ReadTwins (text -> Values)", parse, false);
  row("ingest: Table::Build, devices + modules", build, false);
  row("ingest: total (ReadTwins + Build)", total, true);
  row("ingest: freeing the parsed Values", free_values, false);
  row("ingest: total + freeing the Values", with_free, true);
  row("ingest: Fleet::LoadTwinsText (streamed, from the text in memory)", streamed, true);
  row("ingest: Fleet::LoadTwinsFile (streamed, the file mapped)", from_file, true);
  row("ingest: Fleet::LoadTwinsFile, documents kept in the input (`twinq index build`)", kept,
      true);
  if (!free_tables.empty()) row("(freeing the tables of a repetition)", free_tables, false);

  Snapshot s = fleet->snapshot();
  Check(DocsDigest(s) == streamed_digest, "the streamed ingest holds other twins than Build");
  const Table& d = s.devices();
  const Table& m = s.modules();
  size_t index_mem = d.IndexMemoryBytes() + m.IndexMemoryBytes();
  size_t doc_mem = d.DocumentMemoryBytes() + m.DocumentMemoryBytes();
  double share = 100.0 * static_cast<double>(index_mem) / static_cast<double>(bytes);
  Report("columns (devices / modules)", F("%.0f / %.0f", static_cast<double>(d.columns().size()),
                                          static_cast<double>(m.columns().size())));
  Report("index memory (IndexMemoryBytes, no documents)", F("%.1f MB", MB(index_mem)), "",
         F("devices %.1f MB, modules %.1f MB; %.0f B per twin", MB(d.IndexMemoryBytes()),
           MB(m.IndexMemoryBytes()), static_cast<double>(index_mem) / twins_n));
  Report("index memory / NDJSON size", F("%.1f %%", share), "",
         F("%.0f B per device twin (device table / devices)",
           static_cast<double>(d.IndexMemoryBytes()) / devices_n),
         "<= 40 %", Met(share <= 40));
  Report("document memory (DocumentMemoryBytes)", F("%.1f MB", MB(doc_mem)), "",
         F("%.0f B per twin, %.1f %% of the NDJSON size", static_cast<double>(doc_mem) / twins_n,
           100.0 * static_cast<double>(doc_mem) / static_cast<double>(bytes)));
  Rss after = ReadRss();
  Report("RSS: start / + NDJSON text", F("%.0f MB / %.0f MB", MB(rss_start.rss), MB(rss_text.rss)));
  Report("RSS: Values only (text freed) / + tables",
         F("%.0f MB / %.0f MB", MB(rss_values.rss), MB(rss_tables.rss)), "",
         F("Values %.0f MB (%.1f x the NDJSON), tables %.0f MB", MB(rss_values.rss - rss_start.rss),
           static_cast<double>(rss_values.rss - rss_start.rss) / static_cast<double>(bytes),
           MB(rss_tables.rss - rss_values.rss)));
  Report("RSS: fleet only (Values freed) / peak",
         F("%.0f MB / %.0f MB", MB(after.rss), MB(after.hwm)), "",
         F("fleet RSS - start = %.0f MB vs index + documents = %.0f MB",
           MB(after.rss - rss_start.rss), MB(index_mem + doc_mem)));
  return fleet;
}

// The columns that take the most index memory, largest first.
void TopColumns(const Snapshot& s, int n) {
  struct Entry {
    const char* table;
    const twinq::index::Column* c;
    size_t bytes;
  };
  std::vector<Entry> all;
  size_t total = 0;
  for (const Table* t : {&s.devices(), &s.modules()}) {
    for (const auto& c : t->columns()) {
      all.push_back({t == &s.devices() ? "devices" : "modules", c.get(), c->MemoryBytes()});
      total += all.back().bytes;
    }
  }
  std::sort(all.begin(), all.end(),
            [](const Entry& a, const Entry& b) { return a.bytes > b.bytes; });
  std::fprintf(stderr, "columns by index memory (all columns: %.1f MB):\n", MB(total));
  std::fprintf(stderr, "  %8s %6s %9s %9s %9s %9s %8s  %s\n", "MB", "share", "present", "strings",
               "distinct", "numbers", "postings", "table: path");
  for (int i = 0; i < n && i < static_cast<int>(all.size()); ++i) {
    const twinq::index::Column& c = *all[i].c;
    size_t postings = c.has_string_postings() ? c.dictionary().size() : 0;
    postings += c.number_postings().size();
    std::fprintf(stderr, "  %8.2f %5.1f%% %9llu %9llu %9zu %9zu %8zu  %s: %s\n", MB(all[i].bytes),
                 100.0 * static_cast<double>(all[i].bytes) / static_cast<double>(total),
                 static_cast<unsigned long long>(c.present().Cardinality()),
                 static_cast<unsigned long long>(c.rows(twinq::index::Kind::kString).Cardinality()),
                 c.dictionary().size(), c.numbers().size(), postings, all[i].table,
                 twinq::index::PathDisplay(c.path()).c_str());
  }
}

// ---- single patches ------------------------------------------------------------------------

void SinglePatches(const Options& o, Fleet& fleet) {
  std::fprintf(stderr, "single-twin patches: %d\n", o.patches);
  std::vector<std::string> ids = DeviceIds(fleet.snapshot());
  const size_t index_before = fleet.snapshot().devices().IndexMemoryBytes();
  std::string now = twinq::index::NowTimestamp();
  const std::string star(1, '*');
  constexpr int kValues = 16;
  std::vector<Value> patches;
  for (int v = 0; v < kValues; ++v) {
    auto p = twinq::ParseJson("{\"tags\":{\"benchTag\":\"" + Numbered("p", v) + "\"}}", "patch");
    if (!p.ok()) Die(p.error().message);
    patches.push_back(*p);
  }
  std::mt19937_64 rng(11);
  // Correctness first: a patch is visible in the next snapshot, in the document and in the
  // column; the snapshot taken before does not see it.
  {
    Snapshot before = fleet.snapshot();
    const std::string& id = ids[rng() % ids.size()];
    auto v = fleet.Patch(id, "", patches[3], star, now);
    if (!v.ok()) Die(v.error().message);
    Check(*v == before.version() + 1, "version after a patch");
    CheckTag(fleet.snapshot(), id, "benchTag", "p3");
    Check(DocumentTag(before.devices(), id, "benchTag") == "<absent>", "old snapshot changed");
  }
  for (int i = 0; i < 20; ++i) {  // warm-up
    auto v = fleet.Patch(ids[rng() % ids.size()], "", patches[i % kValues], star, now);
    if (!v.ok()) Die(v.error().message);
  }
  std::vector<std::pair<std::string, int>> done;
  done.reserve(static_cast<size_t>(o.patches));
  // Each patch is timed by the steady clock alone (a vDSO read, about 30 ns here). Reading this
  // thread's CPU clock is a system call that costs about 1.3 us on the benchmark VM, and one
  // such read would fall inside every interval. The CPU time is taken around the whole loop.
  std::vector<double> wall_us;
  wall_us.reserve(static_cast<size_t>(o.patches));
  uint64_t spliced_before = fleet.spliced_patches();
  Timer loop;
  const size_t working_set = o.hot_devices > 0 ? std::min(o.hot_devices, ids.size()) : ids.size();
  for (int i = 0; i < o.patches; ++i) {
    const std::string& id = ids[rng() % working_set];
    const Value& p = patches[i % kValues];
    auto start = std::chrono::steady_clock::now();
    auto v = fleet.Patch(id, "", p, star, now);
    auto end = std::chrono::steady_clock::now();
    if (!v.ok()) Die(v.error().message);
    wall_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    done.emplace_back(id, i % kValues);
  }
  Timing loop_time = loop.Elapsed();
  // What the clock itself adds to an interval (two reads with nothing between).
  std::vector<double> empty_us;
  for (int i = 0; i < 10000; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto end = std::chrono::steady_clock::now();
    empty_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  // The timed patches are visible (the last value written to each of the last 300 devices).
  Snapshot s = fleet.snapshot();
  std::vector<std::pair<std::string, int>> last;
  for (auto it = done.rbegin(); it != done.rend() && last.size() < 300; ++it) {
    if (std::none_of(last.begin(), last.end(),
                     [&](const auto& e) { return e.first == it->first; })) {
      last.push_back(*it);
    }
  }
  // Small patches leave column changes pending (Column::Deferred) until a reader needs them; the
  // first read after the patches pays the merge. Timed separately: merging every pending column.
  size_t pending = 0, pending_columns = 0;
  for (const auto& col : s.devices().columns()) {
    pending += col->pending_rows();
    pending_columns += col->pending_rows() > 0;
  }
  Timer merge_timer;
  for (const auto& col : s.devices().columns()) col->Materialize();
  Timing merge = merge_timer.Elapsed();
  for (const auto& [id, v] : last) CheckTag(s, id, "benchTag", Numbered("p", v));
  Stats w = Summarize(wall_us);
  const double n = static_cast<double>(w.n);
  Report(working_set < ids.size()
             ? F("Fleet::Patch latency (one tag, random device of the first %.0f)",
                 static_cast<double>(working_set))
             : std::string("Fleet::Patch latency (one tag, random device)"),
         F("%.1f us (p99 %.0f us)", w.median, w.p99), F("mean %.1f us", loop_time.cpu * 1e6 / n),
         F("%.0f patches; wall min %.1f us, max %.0f us", n, w.min, w.max) +
             F(", mean %.1f us; the cpu column is the loop's CPU time per patch; clock overhead "
               "%.2f us",
               loop_time.wall * 1e6 / n, Summarize(empty_us).median) +
             F("; %.0f spliced", static_cast<double>(fleet.spliced_patches() - spliced_before)) +
             ProcessKind(o),
         "<= 5 us median", Met(w.median <= 5));
  Report("device index memory before / after the patches",
         F("%.1f MB / %.1f MB", static_cast<double>(index_before) / 1e6,
           static_cast<double>(s.devices().IndexMemoryBytes()) / 1e6),
         "", "after every pending column was merged", "", "");
  Report("first read after the patches: merging the pending columns",
         F("%.1f ms", merge.wall * 1e3), F("%.1f ms", merge.cpu * 1e3),
         F("%.0f columns, %.0f pending rows", static_cast<double>(pending_columns),
           static_cast<double>(pending)),
         "", "");
}

// ---- bulk patches --------------------------------------------------------------------------

void BulkPatches(const Options& o, Fleet& fleet) {
  std::vector<std::string> ids = DeviceIds(fleet.snapshot());
  std::string now = twinq::index::NowTimestamp();
  const std::string star(1, '*');  // If-Match: * (a literal here trips GCC 12's -Wrestrict)
  std::mt19937_64 rng(13);
  std::vector<uint32_t> perm(ids.size());
  for (uint32_t i = 0; i < perm.size(); ++i) perm[i] = i;
  int batch_no = 0;
  for (size_t size : o.batches) {
    if (size > ids.size()) size = ids.size();
    int count = size <= 1000 ? 10 : size <= 10000 ? 5 : o.reps;
    std::fprintf(stderr, "bulk patches: 1 + %d batches of %zu\n", count, size);
    std::vector<Timing> times;
    uint64_t spliced_before = fleet.spliced_patches();
    for (int b = 0; b <= count; ++b) {  // batch 0 is a warm-up
      ++batch_no;
      // A twin job: one value written to `size` distinct random devices.
      std::string value = Numbered("b", batch_no);
      auto patch = twinq::ParseJson("{\"tags\":{\"benchBulk\":\"" + value + "\"}}", "patch");
      if (!patch.ok()) Die(patch.error().message);
      for (size_t i = 0; i < size; ++i) std::swap(perm[i], perm[i + rng() % (perm.size() - i)]);
      std::vector<Mutation> batch(size);
      for (size_t i = 0; i < size; ++i) {
        batch[i].kind = Mutation::Kind::kPatch;
        batch[i].device_id = ids[perm[i]];
        batch[i].patch = *patch;
        batch[i].if_match = star;
      }
      uint64_t before = fleet.snapshot().version();
      Timer t;
      auto v = fleet.Apply(batch, now);
      Timing e = t.Elapsed();
      if (!v.ok()) Die(v.error().message);
      Check(*v == before + 1, "one version per batch");
      Snapshot s = fleet.snapshot();
      for (size_t i = 0; i < std::min<size_t>(size, 200); ++i) {
        CheckTag(s, batch[rng() % size].device_id, "benchBulk", value);
      }
      std::fprintf(stderr, "  batch %d: %.3f s (cpu %.3f)\n", b, e.wall, e.cpu);
      if (b > 0) times.push_back(e);
    }
    TimingStats st = Summarize(times);
    double n = static_cast<double>(size);
    Report("Fleet::Apply, batches of " + std::to_string(size) + " patches",
           F("%.0f patches/s (%.3f s)", n / st.wall.median, st.wall.median),
           F("%.0f patches/s (%.3f s)", n / st.cpu.median, st.cpu.median),
           F("%.0f batches; %.1f us cpu per patch; ", static_cast<double>(st.cpu.n),
             st.cpu.median / n * 1e6) +
               F("%.0f of %.0f patches spliced",
                 static_cast<double>(fleet.spliced_patches() - spliced_before),
                 n * static_cast<double>(count + 1)) +
               ProcessKind(o),
           ">= 500k/s", Met(n / st.cpu.median >= 500000));
  }
}

// ---- save and load -------------------------------------------------------------------------

// Takes the fleet and frees it before the loads, so that at most one fleet, its file image and
// one serialized copy are in memory at a time (a million twins make a fleet of several GB).
void Persist(const Options& o, std::unique_ptr<Fleet> fleet) {
  std::fprintf(stderr, "save / load: %s, %d repetitions\n", o.index_file.c_str(), o.reps);
  auto digest = [](std::string_view bytes) { return std::hash<std::string_view>{}(bytes); };
  Snapshot snap = fleet->snapshot();
  const uint64_t version = snap.version();
  const uint64_t devices = snap.devices().live_count(), modules = snap.modules().live_count();
  std::vector<std::pair<std::string, std::string>> sample;  // device id -> stored document
  {
    std::mt19937_64 rng(17);
    for (int k = 0; k < 500; ++k) {
      uint32_t row = snap.devices().order()[rng() % snap.devices().order().size()];
      sample.emplace_back(snap.devices().device_id(row), snap.devices().doc_json(row));
    }
  }
  snap = Snapshot();
  // Save once; the file's size and digest are what every later Serialize and load must give.
  auto saved = fleet->Save(o.index_file);
  if (!saved.ok()) Die(saved.error().message);
  size_t file_size = 0, file_digest = 0;
  {
    std::string file = ReadFile(o.index_file);
    Check(file.size() == *saved, "Save's size");
    file_size = file.size();
    file_digest = digest(file);
  }
  std::vector<Timing> ser, save, open, deser;
  for (int r = 0; r < o.reps; ++r) {
    Timer t;
    std::string bytes = fleet->Serialize();
    ser.push_back(t.Elapsed());
    Check(bytes.size() == file_size && digest(bytes) == file_digest,
          "Serialize() differs from the saved file");
  }
  for (int r = 0; r < o.reps; ++r) {
    Timer t;
    auto s = fleet->Save(o.index_file);
    save.push_back(t.Elapsed());
    if (!s.ok()) Die(s.error().message);
  }
  fleet.reset();
  // Correctness of loading: Open gives the same fleet (serialized bytes, counts, documents).
  {
    auto loaded = Fleet::Open(o.index_file);
    if (!loaded.ok()) Die(loaded.error().message);
    {
      std::string again = (*loaded)->Serialize();
      Check(again.size() == file_size && digest(again) == file_digest,
            "Serialize() after Open differs from the saved bytes");
    }
    Snapshot l = (*loaded)->snapshot();
    Check(l.version() == version, "version after load");
    Check(l.devices().live_count() == devices, "device count after load");
    Check(l.modules().live_count() == modules, "module count after load");
    for (const auto& [id, json] : sample) {
      auto row = l.devices().FindRow(id);
      Check(row && l.devices().doc_json(*row) == json, "document of " + id + " after load");
    }
  }
  for (int r = 0; r < o.reps; ++r) {
    {
      Timer t;
      auto loaded = Fleet::Open(o.index_file);
      open.push_back(t.Elapsed());
      if (!loaded.ok()) Die(loaded.error().message);
      Check((*loaded)->snapshot().devices().live_count() == devices, "open");
    }
    {
      std::string file = ReadFile(o.index_file);  // untimed
      Timer t;
      auto d = Fleet::Deserialize(file, o.index_file);
      deser.push_back(t.Elapsed());
      if (!d.ok()) Die(d.error().message);
      Check((*d)->snapshot().devices().live_count() == devices, "deserialize");
    }
    std::fprintf(stderr, "  rep %d: Open %.3f s, Deserialize %.3f s (cpu %.3f / %.3f)\n", r + 1,
                 open.back().wall, deser.back().wall, open.back().cpu, deser.back().cpu);
  }
  double gb = static_cast<double>(file_size) / 1e9;
  Report("index file size", F("%.1f MB", MB(file_size)), "",
         F("%.0f B per twin",
           static_cast<double>(file_size) / static_cast<double>(devices + modules)));
  auto row = [&](const std::string& name, const std::vector<Timing>& v, bool load) {
    TimingStats s = Summarize(v);
    double gbs = gb / s.cpu.median;
    Report(name, F("%.2f s = %.2f GB/s", s.wall.median, gb / s.wall.median),
           F("%.2f s = %.2f GB/s", s.cpu.median, gbs),
           F("cpu range %.2f-%.2f s", s.cpu.min, s.cpu.max), load ? ">= 1 GB/s" : "",
           load ? Met(gbs >= 1) : "");
  };
  row("Serialize (to memory)", ser, false);
  row("Save (streamed to a temporary file, fsync, rename)", save, false);
  row("Open (read from page cache + Deserialize)", open, true);
  row("Deserialize (from memory)", deser, true);
  std::remove(o.index_file.c_str());
}

}  // namespace

// --open FILE: Fleet::Open of a saved index (in the page cache after the first, untimed, open),
// --reps times; the first open's fleet is checked against Deserialize of the same bytes.
void OpenOnly(const Options& o) {
  std::string file = ReadFile(o.open);
  size_t file_size = file.size();
  {
    auto opened = Fleet::Open(o.open);
    if (!opened.ok()) Die(opened.error().message);
    auto copied = Fleet::Deserialize(file, o.open);
    if (!copied.ok()) Die(copied.error().message);
    Check((*opened)->Serialize() == (*copied)->Serialize(), "Open and Deserialize differ");
    Check((*opened)->Serialize() == file, "Serialize() after Open differs from the file");
  }
  file = std::string();
  std::vector<Timing> open;
  for (int r = 0; r < o.reps; ++r) {
    Timer t;
    auto loaded = Fleet::Open(o.open);
    open.push_back(t.Elapsed());
    if (!loaded.ok()) Die(loaded.error().message);
    std::fprintf(stderr, "  rep %d: Open %.3f s (cpu %.3f)\n", r + 1, open.back().wall,
                 open.back().cpu);
  }
  double gb = static_cast<double>(file_size) / 1e9;
  TimingStats s = Summarize(open);
  Report("index file size", F("%.1f MB", MB(file_size)), "", "");
  Report("Open (read from page cache + Deserialize)",
         F("%.2f s = %.2f GB/s", s.wall.median, gb / s.wall.median),
         F("%.2f s = %.2f GB/s", s.cpu.median, gb / s.cpu.median),
         F("%.0f reps; cpu range %.2f-%.2f s", o.reps, s.cpu.min, s.cpu.max), ">= 1 GB/s",
         Met(gb / s.cpu.median >= 1));
}

// The result table (markdown), every Report row in order.
void PrintTable() {
  std::printf("| metric | wall (median) | CPU (median) | detail | target (on CPU) | met |\n");
  std::printf("|---|---:|---:|---|---|---|\n");
  for (const Row& r : g_rows) {
    std::printf("| %s | %s | %s | %s | %s | %s |\n", r.metric.c_str(), r.wall.c_str(),
                r.cpu.c_str(), r.detail.c_str(), r.target.c_str(), r.met.c_str());
  }
}

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  if (o.threaded) std::thread([] {}).join();  // see --threaded in the header
  if (!o.open.empty() && o.only != "patch" && o.only != "bulk") {
    OpenOnly(o);
    PrintTable();
    return 0;
  }
  std::unique_ptr<Fleet> fleet;
  if (!o.open.empty()) {
    // Patches on an opened index (the REPL's and `twinq job`'s --index): no ingest first, so a
    // large fleet is ready in seconds; its documents are views into the mapped file.
    auto opened = Fleet::Open(o.open);
    if (!opened.ok()) Die(opened.error().message);
    fleet = std::move(opened.value());
  } else {
    MaybeGenerate(o);
    fleet = Ingest(o);
  }
  fleet->set_splice_patches(o.splice);
  {
    Snapshot s = fleet->snapshot();  // released here: a held snapshot keeps its version alive
    std::fprintf(stderr, "fleet: %llu devices, %llu modules\n",
                 static_cast<unsigned long long>(s.devices().live_count()),
                 static_cast<unsigned long long>(s.modules().live_count()));
    if (o.top_columns > 0) TopColumns(s, o.top_columns);
  }
  if (o.only.empty() || o.only == "patch") SinglePatches(o, *fleet);
  if (o.only.empty() || o.only == "bulk") BulkPatches(o, *fleet);
  if (o.only.empty() || o.only == "persist") Persist(o, std::move(fleet));

  PrintTable();
  return 0;
}
