#include "tools/repl.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "engine/ast/ast.h"
#include "engine/check/functions.h"
#include "engine/parse/parser.h"
#include "engine/ref/query.h"
#include "engine/vm/interpreter.h"
#include "engine/vm/query.h"
#include "jobs/job_manager.h"
#include "jobs/simulated_devices.h"
#include "tools/frontend.h"

namespace twinq::tools {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

// Times are always printed with three decimals and a unit, so that tests can mask them.
std::string FormatMs(double ms) { return fmt::format("{:.3f} ms", ms); }
std::string FormatSeconds(double ms) { return fmt::format("{:.3f} s", ms / 1000); }

std::string_view Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool IsBlank(std::string_view s) { return Trim(s).empty(); }

bool IsIdentChar(unsigned char c) { return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

// TEXT is a query when its first word is SELECT; otherwise a job condition.
bool LooksLikeQuery(std::string_view text) {
  text = Trim(text);
  return text.size() >= 6 && EqualsIgnoreCase(text.substr(0, 6), "select") &&
         (text.size() == 6 || !IsIdentChar(static_cast<unsigned char>(text[6])));
}

// Code points of UTF-8 text (continuation bytes do not count).
size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The longest prefix of `s` with at most `width` code points.
std::string_view CutToWidth(std::string_view s, size_t width) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (n == width) return s.substr(0, i);
      ++n;
    }
  }
  return s;
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return Grouped(n) + " " + std::string(n == 1 ? one : many);
}

// The id a result row stands for: deviceId, or deviceId/moduleId; empty when it has none.
std::string RowId(const Value& row) {
  const Value* d = row.Find("deviceId");
  if (d == nullptr || !d->is_string()) return {};
  std::string id = d->as_string();
  if (const Value* m = row.Find("moduleId"); m != nullptr && m->is_string()) {
    id += '/';
    id += m->as_string();
  }
  return id;
}

// A FILE argument: surrounding quotes are optional.
std::string Unquote(std::string_view s) {
  s = Trim(s);
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) {
    s = s.substr(1, s.size() - 2);
  }
  return std::string(s);
}

bool IsIndexFile(const std::string& path) {
  if (path.size() > 6 && path.compare(path.size() - 6, 6, ".twinq") == 0) return true;
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, sizeof magic);
  return in.gcount() == 8 && std::memcmp(magic, "TWINQIDX", 8) == 0;
}

struct CommandInfo {
  const char* name;
  const char* args;
  const char* summary;
};

const CommandInfo kCommands[] = {
    {".help", "", "this list"},
    {".load", "FILE", "open a twins file (NDJSON, JSON array, objects) or a .twinq index"},
    {".save", "FILE", "save the fleet with its index (open it with .load or --index)"},
    {".paths", "[PREFIX]", "indexed property paths: types, defined and distinct counts"},
    {".ast", "TEXT", "the syntax tree of TEXT"},
    {".bound", "TEXT", "the bound IR of TEXT (paths resolved, constants folded)"},
    {".explain", "TEXT", "the VM program of TEXT's condition"},
    {".plan", "TEXT", "the VM's plan: access path, estimated and actual rows per step"},
    {".timer", "on|off", "time each statement: parse+bind, compile, evaluate"},
    {".mode", "json|table|ids|count", "output form"},
    {".engine", "vm|ref|both", "the evaluating engine; both cross-checks vm against ref"},
    {".limit", "N", "print at most N rows (0: no limit)"},
    {".complete", "TEXT", "the TAB completions of TEXT's last word"},
    {".job", "SUBCOMMAND ...", "jobs on this fleet: schedule JSON, list, get, cancel, devices"},
    {".quit", "", "leave (also .exit, Ctrl-D)"},
};

const char* const kKeywords[] = {"SELECT", "TOP",   "FROM", "WHERE",    "GROUP", "BY",
                                 "AS",     "AND",   "OR",   "NOT",      "IN",    "NIN",
                                 "TRUE",   "FALSE", "NULL", "UNDEFINED"};
const char* const kCollections[] = {"devices", "devices.modules", "devices.jobs"};

const char* ModeName(Repl::Mode m) {
  switch (m) {
    case Repl::Mode::kJson:
      return "json";
    case Repl::Mode::kTable:
      return "table";
    case Repl::Mode::kIds:
      return "ids";
    case Repl::Mode::kCount:
      return "count";
  }
  return "json";
}

const char* EngineName(Repl::Engine e) {
  switch (e) {
    case Repl::Engine::kVm:
      return "vm";
    case Repl::Engine::kRef:
      return "ref";
    case Repl::Engine::kBoth:
      return "both";
  }
  return "vm";
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool LessIgnoreCase(const std::string& a, const std::string& b) {
  std::string la = ToLowerAscii(a), lb = ToLowerAscii(b);
  return la != lb ? la < lb : a < b;
}

}  // namespace

std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

bool RegularOrAbsent(const std::string& path) {
  std::error_code ec;
  std::filesystem::file_status st = std::filesystem::status(path, ec);
  return !std::filesystem::exists(st) || std::filesystem::is_regular_file(st);
}

size_t FindStatementEnd(std::string_view text) {
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        if (i + 1 < text.size() && text[i + 1] == quote) {
          ++i;  // a doubled quote stands for itself
        } else {
          quote = 0;
        }
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '[' && i + 1 < text.size() && text[i + 1] == '[') {
      // [[escaped name]]: up to the next "]]" on the line, with no bracket in between.
      size_t k = i + 2;
      while (k < text.size() && text[k] != '[' && text[k] != ']' && text[k] != '\n') ++k;
      if (k + 1 < text.size() && text[k] == ']' && text[k + 1] == ']') i = k + 1;
    } else if (c == ';') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

LineReader::Status StreamLineReader::Read(bool /*continuation*/, std::string* line) {
  if (!std::getline(in_, *line)) return Status::kEof;
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return Status::kLine;
}

// One evaluation, owned jointly by the REPL and its worker thread: everything the worker reads
// lives here (the snapshot keeps the index alive, the bound IR the residual expressions), so an
// abandoned worker can finish safely after the REPL has moved on or replaced the fleet.
struct Repl::Job {
  bool is_query = false;
  Engine engine = Engine::kVm;
  int delay_ms = 0;
  bool drop_vm_row = false;
  size_t want = 0;  // ids to materialise (0: all)
  index::Snapshot snapshot;
  std::shared_ptr<const TwinSet> ref_docs;  // in: cached, may be null; out: built when needed
  check::BoundCondition condition;
  check::BoundQuery query;

  // Results: the primary engine's (vm unless the engine is ref), and ref's when comparing.
  bool modules = false;
  uint64_t count = 0;
  std::vector<std::string> ids;
  std::vector<Value> rows;
  uint64_t ref_count = 0;
  std::vector<std::string> ref_ids;
  std::vector<Value> ref_rows;
  std::string error;
  double compile_ms = -1, eval_ms = 0, ref_ms = 0, ref_load_ms = -1;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  void Work();
};

void Repl::Job::Work() {
  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  bool use_vm = engine != Engine::kRef;
  bool use_ref = engine != Engine::kVm;
  bool compare = engine == Engine::kBoth;
  if (use_ref && !ref_docs) {
    Clock::time_point t = Clock::now();
    ref_docs = std::make_shared<const TwinSet>(index::ToTwinSet(snapshot));
    ref_load_ms = Ms(t);
  }
  ref::Documents docs;
  if (ref_docs) docs = {ref_docs->devices, ref_docs->modules, {}};
  if (!is_query) {
    modules = condition.collection == check::Collection::kModules;
    if (use_vm) {
      const index::Table& table = vm::TableOf(snapshot, condition.collection);
      index::Bitmap selected;
      if (condition.all) {
        selected = table.live();
      } else {
        Clock::time_point t = Clock::now();
        vm::Program program = vm::CompileFilter(condition.expr.get(), table);
        compile_ms = Ms(t);
        t = Clock::now();
        selected = vm::Run(program, table);
        eval_ms = Ms(t);
      }
      Clock::time_point t = Clock::now();
      std::vector<uint32_t> order = table.InIdOrder(selected);
      if (drop_vm_row && !order.empty()) order.pop_back();
      count = order.size();
      size_t n = compare || want == 0 ? order.size() : std::min(want, order.size());
      ids.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        std::string id(table.device_id(order[i]));
        if (modules) {
          id += '/';
          id += table.module_id(order[i]);
        }
        ids.push_back(std::move(id));
      }
      eval_ms += Ms(t);
    }
    if (use_ref) {
      Clock::time_point t = Clock::now();
      std::vector<std::string> r = ref::TargetIds(condition, docs);
      ref_ms = Ms(t);
      if (use_vm) {
        ref_count = r.size();
        ref_ids = std::move(r);
      } else {
        count = r.size();
        if (want != 0 && r.size() > want) r.resize(want);
        ids = std::move(r);
        eval_ms = ref_ms;
      }
    }
    return;
  }
  if (use_vm) {
    const index::Table& table = vm::TableOf(snapshot, query.collection);
    Clock::time_point t = Clock::now();
    vm::Program program = vm::CompileFilter(query.where.get(), table);
    compile_ms = Ms(t);
    t = Clock::now();
    rows = vm::AllRows(query, snapshot);  // compiles again: a few microseconds
    eval_ms = Ms(t);
    if (drop_vm_row && !rows.empty()) rows.pop_back();
    count = rows.size();
  }
  if (use_ref) {
    Clock::time_point t = Clock::now();
    std::vector<Value> r = ref::AllRows(query, docs);
    ref_ms = Ms(t);
    if (use_vm) {
      ref_count = r.size();
      ref_rows = std::move(r);
    } else {
      count = r.size();
      rows = std::move(r);
      eval_ms = ref_ms;
    }
  }
}

Repl::Repl(std::ostream& out, std::ostream& err, ReplOptions options)
    : out_(out), err_(err), options_(options), fleet_(std::make_unique<index::Fleet>()) {}

Repl::~Repl() = default;

void Repl::SetFleet(std::unique_ptr<index::Fleet> fleet, std::string name) {
  jobs_.reset();  // it refers to the fleet being replaced
  fleet_ = std::move(fleet);
  fleet_name_ = std::move(name);
  ref_docs_.reset();
  ref_version_ = 0;
  RebuildPaths();
}

std::string Repl::FleetSummary() const {
  index::Snapshot s = fleet_->snapshot();
  return Plural(s.devices().live_count(), "device twin", "device twins") + ", " +
         Plural(s.modules().live_count(), "module twin", "module twins");
}

void Repl::RebuildPaths() {
  std::set<std::string> seen;
  index::Snapshot s = fleet_->snapshot();
  for (const index::Table* t : {&s.devices(), &s.modules()}) {
    for (const auto& c : t->columns()) {
      bool indexed = std::any_of(c->path().begin(), c->path().end(),
                                 [](const index::Step& st) { return st.is_index; });
      if (!indexed && !c->path().empty()) seen.insert(index::PathDisplay(c->path()));
    }
  }
  paths_.assign(seen.begin(), seen.end());
  std::sort(paths_.begin(), paths_.end(), LessIgnoreCase);
}

bool Repl::Interrupted() { return options_.interrupt != nullptr && options_.interrupt->load(); }

void Repl::Error(const std::string& message) {
  failed_ = true;
  out_.flush();
  err_ << message;
  if (!message.empty() && message.back() != '\n') err_ << '\n';
  err_.flush();
}

bool Repl::WorkersRunning() const {
  for (const auto& job : abandoned_) {
    std::lock_guard<std::mutex> lock(job->mu);
    if (!job->done) return true;
  }
  return false;
}

int Repl::Run(LineReader& in) {
  std::string pending;  // the statement being typed
  std::string raw;      // its input lines, for the history
  std::string line;
  for (;;) {
    LineReader::Status status = in.Read(!pending.empty(), &line);
    if (status == LineReader::Status::kInterrupted) {
      pending.clear();
      raw.clear();
      continue;
    }
    if (status == LineReader::Status::kEof) {
      if (!IsBlank(pending)) {
        in.Remember(raw);
        Execute(pending);
      }
      break;
    }
    if (pending.empty()) {
      std::string_view t = Trim(line);
      if (t.empty()) continue;
      if (t.front() == '.') {
        in.Remember(std::string(t));
        if (!Execute(line)) break;
        continue;
      }
    }
    if (IsBlank(line)) {  // an empty line ends the statement
      in.Remember(raw);
      std::string text = std::move(pending);
      pending.clear();
      raw.clear();
      Execute(text);
      continue;
    }
    if (!raw.empty()) raw += ' ';
    raw += Trim(line);
    pending += line;
    pending += '\n';
    bool quit = false;
    for (size_t end; !quit && (end = FindStatementEnd(pending)) != std::string::npos;) {
      std::string text = pending.substr(0, end - 1);
      pending.erase(0, end);
      if (IsBlank(pending)) {
        pending.clear();
        in.Remember(raw);
        raw.clear();
      }
      if (!IsBlank(text)) quit = !Execute(text);
    }
    if (quit) break;
  }
  out_.flush();
  return options_.interactive || !failed_ ? 0 : 2;
}

bool Repl::Execute(const std::string& text) {
  // A write interrupted by Ctrl-C (EINTR on a terminal) leaves the stream failed: start clean.
  out_.clear();
  err_.clear();
  try {
    std::string_view t = Trim(text);
    if (!t.empty() && t.front() == '.') return RunCommand(text);
    RunStatement(text);
  } catch (const std::exception& e) {
    Error(fmt::format("internal error: {}", e.what()));
  } catch (...) {
    Error("internal error");
  }
  out_.flush();
  return true;
}

bool Repl::Wait(const std::shared_ptr<Job>& job) {
  // The worker cannot see Ctrl-C or a resize: SIGINT and SIGWINCH are blocked in it, so they
  // always reach the thread that reads the terminal.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGWINCH);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  std::thread worker;
  try {
    worker = std::thread([job] {
      try {
        job->Work();
      } catch (const std::exception& e) {
        job->error = fmt::format("internal error: {}", e.what());
      } catch (...) {
        job->error = "internal error";
      }
      std::lock_guard<std::mutex> lock(job->mu);
      job->done = true;
      job->cv.notify_all();
    });
  } catch (...) {  // no thread to be had: report it, with Ctrl-C working again
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  worker.detach();
  std::unique_lock<std::mutex> lock(job->mu);
  while (!job->done) {
    if (Interrupted()) {
      abandoned_.push_back(job);
      return false;
    }
    job->cv.wait_for(lock, std::chrono::milliseconds(20));
  }
  return true;
}

void Repl::RunStatement(const std::string& text) {
  if (options_.interrupt != nullptr) options_.interrupt->store(false);
  // Forget abandoned workers that have finished.
  std::erase_if(abandoned_, [](const std::shared_ptr<Job>& j) {
    std::lock_guard<std::mutex> lock(j->mu);
    return j->done;
  });

  auto job = std::make_shared<Job>();
  job->is_query = LooksLikeQuery(text);
  job->engine = engine_;
  job->delay_ms = options_.eval_delay_ms;
  job->drop_vm_row = options_.drop_vm_row;
  job->want = limit_;
  Clock::time_point t0 = Clock::now();
  Source source(job->is_query ? "<query>" : "<condition>", text);
  if (job->is_query) {
    auto q = CompileQuery(source);
    if (!q.ok()) return Error(Render(q.diagnostics(), source));
    job->query = std::move(q).value();
  } else {
    auto c = CompileCondition(source);
    if (!c.ok()) return Error(Render(c.diagnostics(), source));
    job->condition = std::move(c).value();
  }
  double bind_ms = Ms(t0);
  job->snapshot = fleet_->snapshot();
  if (ref_docs_ && ref_version_ == job->snapshot.version()) job->ref_docs = ref_docs_;

  if (!Wait(job)) {
    options_.interrupt->store(false);
    out_.flush();
    err_ << (options_.interactive ? "\n" : "")
         << "interrupted (the evaluation finishes in the background; its result is dropped)\n";
    err_.flush();
    return;
  }
  if (!job->error.empty()) return Error(job->error);
  if (job->ref_docs && job->ref_docs != ref_docs_) {
    ref_docs_ = job->ref_docs;
    ref_version_ = job->snapshot.version();
  }

  if (!(job->is_query ? PrintRows(job->rows) : PrintIds(job->ids, job->count, job->modules))) {
    return;  // interrupted
  }

  if (engine_ == Engine::kBoth) {
    // Cross-check: the full results must be identical, in order.
    std::string diff;
    size_t n = job->is_query ? std::max(job->rows.size(), job->ref_rows.size())
                             : std::max(job->ids.size(), job->ref_ids.size());
    for (size_t i = 0; i < n && diff.empty(); ++i) {
      if (job->is_query) {
        const Value* a = i < job->rows.size() ? &job->rows[i] : nullptr;
        const Value* b = i < job->ref_rows.size() ? &job->ref_rows[i] : nullptr;
        if (a == nullptr || b == nullptr || !(*a == *b)) {
          diff = fmt::format("first difference at row {}:\n!!!   vm:  {}\n!!!   ref: {}\n", i + 1,
                             a ? ToJson(*a) : "(no row)", b ? ToJson(*b) : "(no row)");
        }
      } else {
        const std::string* a = i < job->ids.size() ? &job->ids[i] : nullptr;
        const std::string* b = i < job->ref_ids.size() ? &job->ref_ids[i] : nullptr;
        if (a == nullptr || b == nullptr || *a != *b) {
          diff = fmt::format("first difference at id {}:\n!!!   vm:  {}\n!!!   ref: {}\n", i + 1,
                             a ? *a : "(no id)", b ? *b : "(no id)");
        }
      }
    }
    if (diff.empty()) {
      out_ << "(vm and ref agree: " << Plural(job->count, "row", "rows") << ")\n";
    } else {
      Error(fmt::format(
          "!!! ENGINE MISMATCH: vm and ref disagree on this statement\n"
          "!!!   vm: {}, ref: {}; {}",
          Plural(job->count, "row", "rows"), Plural(job->ref_count, "row", "rows"), diff));
    }
  }

  if (timer_) {
    std::string line = "time: parse+bind " + FormatMs(bind_ms);
    if (job->ref_load_ms >= 0) line += ", ref documents " + FormatMs(job->ref_load_ms);
    if (engine_ != Engine::kRef) {
      line += ", compile " + (job->compile_ms >= 0 ? FormatMs(job->compile_ms) : "-");
    }
    if (engine_ == Engine::kBoth) {
      line += ", evaluate vm " + FormatMs(job->eval_ms) + ", ref " + FormatMs(job->ref_ms);
    } else {
      line += ", evaluate " + FormatMs(job->eval_ms);
    }
    out_ << line << "\n";
  }
}

// After Ctrl-C stopped one of the printing loops.
void Repl::Interruption() {
  out_.clear();
  out_.flush();
  out_.clear();
  err_.clear();
  err_ << (options_.interactive ? "\n" : "") << "interrupted\n";
  err_.flush();
  options_.interrupt->store(false);
}

void Repl::PrintMore(uint64_t more) {
  out_ << "... " << Plural(more, "more row", "more rows") << "; .limit N to show more\n";
}

bool Repl::PrintIds(const std::vector<std::string>& ids, uint64_t total, bool modules) {
  if (mode_ == Mode::kCount) {
    out_ << total << "\n";
    return true;
  }
  if (mode_ != Mode::kIds) {
    out_ << Grouped(total) << (modules ? " module" : " device")
         << (total == 1 ? " twin matches\n" : " twins match\n");
  }
  size_t shown = limit_ == 0 ? ids.size() : std::min<size_t>(limit_, ids.size());
  for (size_t i = 0; i < shown; ++i) {
    if (Interrupted()) {
      Interruption();
      return false;
    }
    out_ << ids[i] << '\n';
  }
  if (total > shown) PrintMore(total - shown);
  return true;
}

bool Repl::PrintRows(const std::vector<Value>& rows) {
  if (mode_ == Mode::kCount) {
    out_ << rows.size() << "\n";
    return true;
  }
  size_t shown = limit_ == 0 ? rows.size() : std::min<size_t>(limit_, rows.size());
  if (mode_ == Mode::kTable) {
    if (!PrintTable(rows, shown)) return false;
  } else {
    std::string line;
    for (size_t i = 0; i < shown; ++i) {
      if (Interrupted()) {
        Interruption();
        return false;
      }
      line.clear();
      if (mode_ == Mode::kIds) line = RowId(rows[i]);
      if (line.empty()) AppendJson(rows[i], &line);
      line += '\n';
      out_ << line;
    }
  }
  if (rows.size() > shown) {
    PrintMore(rows.size() - shown);
  } else if (mode_ != Mode::kIds) {
    out_ << "(" << Plural(rows.size(), "row", "rows") << ")\n";
  }
  return true;
}

bool Repl::PrintTable(const std::vector<Value>& rows, size_t shown) {
  constexpr size_t kMaxCell = 40;
  // Columns: the union of the rows' keys in first-seen order.
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (size_t i = 0; i < shown; ++i) {
    if (!rows[i].is_object()) {
      if (seen.insert("").second) keys.push_back("");
      continue;
    }
    for (const Member& m : rows[i].as_object()) {
      if (!m.second.is_undefined() && seen.insert(m.first).second) keys.push_back(m.first);
    }
  }
  // Cells: compact JSON, cut to kMaxCell code points.
  std::vector<std::vector<std::string>> cells(shown, std::vector<std::string>(keys.size()));
  std::vector<std::vector<bool>> numeric(shown, std::vector<bool>(keys.size()));
  std::vector<size_t> width(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) width[k] = DisplayWidth(keys[k]);
  for (size_t i = 0; i < shown; ++i) {
    if (Interrupted()) break;
    for (size_t k = 0; k < keys.size(); ++k) {
      const Value* v = nullptr;
      if (!rows[i].is_object()) {
        if (keys[k].empty()) v = &rows[i];
      } else {
        v = rows[i].Find(keys[k]);
      }
      if (v == nullptr || v->is_undefined()) continue;
      std::string s = ToJson(*v);
      if (DisplayWidth(s) > kMaxCell) s = std::string(CutToWidth(s, kMaxCell - 1)) + "…";
      numeric[i][k] = v->is_number();
      width[k] = std::max(width[k], DisplayWidth(s));
      cells[i][k] = std::move(s);
    }
  }
  auto pad = [](std::string_view s, size_t w, bool right) {
    std::string fill(w > DisplayWidth(s) ? w - DisplayWidth(s) : 0, ' ');
    return right ? fill + std::string(s) : std::string(s) + fill;
  };
  auto emit = [&](std::string line) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out_ << line << '\n';
  };
  std::string header, rule;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (k > 0) header += "  ", rule += "  ";
    header += pad(keys[k], width[k], false);
    rule += std::string(width[k], '-');
  }
  emit(header);
  emit(rule);
  for (size_t i = 0; i < shown; ++i) {
    if (Interrupted()) {
      Interruption();
      return false;
    }
    std::string line;
    for (size_t k = 0; k < keys.size(); ++k) {
      if (k > 0) line += "  ";
      line += pad(cells[i][k], width[k], numeric[i][k]);
    }
    emit(line);
  }
  return true;
}

bool Repl::RunCommand(const std::string& line) {
  if (options_.interrupt != nullptr) options_.interrupt->store(false);
  std::string_view t = Trim(line);
  while (!t.empty() && t.back() == ';') t = Trim(t.substr(0, t.size() - 1));
  size_t space = 0;
  while (space < t.size() && !std::isspace(static_cast<unsigned char>(t[space]))) ++space;
  std::string name = ToLowerAscii(t.substr(0, space));
  std::string arg(Trim(t.substr(space)));

  auto on_off = [&](bool* flag, const char* what) {
    if (arg.empty()) {
      out_ << what << " " << (*flag ? "on" : "off") << "\n";
    } else if (EqualsIgnoreCase(arg, "on")) {
      *flag = true;
    } else if (EqualsIgnoreCase(arg, "off")) {
      *flag = false;
    } else {
      Error(fmt::format("{}: expected on or off, not '{}'", name, arg));
    }
  };

  if (name == ".quit" || name == ".exit") return false;
  if (name == ".help") {
    CmdHelp();
  } else if (name == ".load") {
    if (arg.empty()) return Error("usage: .load FILE"), true;
    CmdLoad(Unquote(arg));
  } else if (name == ".save") {
    if (arg.empty()) return Error("usage: .save FILE"), true;
    CmdSave(Unquote(arg));
  } else if (name == ".paths") {
    CmdPaths(arg);
  } else if (name == ".ast" || name == ".bound" || name == ".explain" || name == ".plan") {
    if (arg.empty()) return Error(fmt::format("usage: {} TEXT", name)), true;
    CmdStage(name, arg);
  } else if (name == ".timer") {
    on_off(&timer_, "timer");
  } else if (name == ".mode") {
    const Mode modes[] = {Mode::kJson, Mode::kTable, Mode::kIds, Mode::kCount};
    if (arg.empty()) {
      out_ << "mode " << ModeName(mode_) << "\n";
    } else if (auto it = std::find_if(std::begin(modes), std::end(modes),
                                      [&](Mode m) { return EqualsIgnoreCase(arg, ModeName(m)); });
               it != std::end(modes)) {
      mode_ = *it;
    } else {
      Error(fmt::format(".mode: expected json, table, ids or count, not '{}'", arg));
    }
  } else if (name == ".engine") {
    const Engine engines[] = {Engine::kVm, Engine::kRef, Engine::kBoth};
    if (arg.empty()) {
      out_ << "engine " << EngineName(engine_) << "\n";
    } else if (auto it =
                   std::find_if(std::begin(engines), std::end(engines),
                                [&](Engine e) { return EqualsIgnoreCase(arg, EngineName(e)); });
               it != std::end(engines)) {
      engine_ = *it;
    } else {
      Error(fmt::format(".engine: expected vm, ref or both, not '{}'", arg));
    }
  } else if (name == ".limit") {
    if (arg.empty()) {
      out_ << "limit " << limit_ << (limit_ == 0 ? " (no limit)" : "") << "\n";
    } else {
      size_t n = 0;
      auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
      if (ec != std::errc() || end != arg.data() + arg.size() || n > 1000000000) {
        Error(fmt::format(".limit: expected a number from 0 (no limit) to 1000000000, not '{}'",
                          arg));
      } else {
        limit_ = n;
      }
    }
  } else if (name == ".job") {
    CmdJob(arg);
  } else if (name == ".complete") {
    // The argument is the text before the cursor; keep its trailing blanks.
    std::string_view rest = line;
    rest.remove_prefix(std::min(rest.size(), rest.find('.') + name.size()));
    if (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    Completion c = Complete(rest);
    if (c.candidates.empty()) {
      out_ << "(no completions)\n";
    } else {
      for (const std::string& s : c.candidates) out_ << s << "\n";
    }
  } else {
    std::vector<std::string_view> names;
    for (const CommandInfo& c : kCommands) names.push_back(c.name);
    std::string_view near = ClosestMatch(name, names);
    Error(fmt::format("unknown command '{}'{}; .help lists the commands", name,
                      near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
  }
  return true;
}

void Repl::CmdHelp() {
  out_ << "Statements end with ';' or an empty line:\n"
          "  SELECT ... FROM devices ...      a query: prints its rows\n"
          "  tags.floor = 3                   a job condition: the count and the first ids\n"
          "  FROM devices.modules WHERE ...   a condition over module twins; * is every device\n"
          "Commands (TEXT is a condition, or a query when it starts with SELECT):\n";
  for (const CommandInfo& c : kCommands) {
    std::string head = fmt::format("{} {}", c.name, c.args);
    out_ << fmt::format("  {:<30} {}\n", head, c.summary);
  }
  out_ << "TAB completes keywords, functions, collections and the fleet's paths; Ctrl-C\n"
          "interrupts a statement or clears the line; Ctrl-D quits.\n";
}

void Repl::CmdLoad(const std::string& file) {
  Clock::time_point t = Clock::now();
  if (!RegularOrAbsent(file)) return Error(fmt::format(".load: {}: not a regular file", file));
  std::unique_ptr<index::Fleet> fleet;
  if (IsIndexFile(file)) {
    auto opened = index::Fleet::Open(file);
    if (!opened.ok()) return Error(".load: " + opened.error().message);
    fleet = std::move(opened).value();
  } else {
    fleet = std::make_unique<index::Fleet>();
    Expected<size_t> n = fleet->LoadTwinsFile(file);
    if (!n.ok()) return Error(".load: " + n.error().message);
  }
  SetFleet(std::move(fleet), file);
  out_ << "loaded " << file << ": " << FleetSummary() << " in " << FormatSeconds(Ms(t)) << "\n";
}

void Repl::CmdSave(const std::string& file) {
  if (!RegularOrAbsent(file)) return Error(fmt::format(".save: {}: not a regular file", file));
  Expected<size_t> n = fleet_->Save(file);
  if (!n.ok()) return Error(".save: " + n.error().message);
  out_ << "saved " << file << ": " << FleetSummary() << ", " << Grouped(*n) << " bytes\n";
}

void Repl::CmdPaths(const std::string& prefix) {
  index::Snapshot s = fleet_->snapshot();
  bool any = false;
  struct Row {
    std::string path, types, defined, distinct;
  };
  for (const index::Table* table : {&s.devices(), &s.modules()}) {
    std::vector<Row> rows;
    for (const auto& col : table->columns()) {
      if (Interrupted()) break;
      std::string path = index::PathDisplay(col->path());
      if (!StartsWithIgnoreCase(path, prefix)) continue;
      const auto& k = col->stats().kind_counts;
      auto count = [&](index::Kind kind) { return k[static_cast<size_t>(kind)]; };
      std::vector<std::string> types;
      for (index::Kind kind : {index::Kind::kNull, index::Kind::kFalse, index::Kind::kNumber,
                               index::Kind::kString, index::Kind::kArray, index::Kind::kObject}) {
        uint64_t n = count(kind);
        if (kind == index::Kind::kFalse) n += count(index::Kind::kTrue);
        if (n == 0) continue;
        types.push_back(kind == index::Kind::kFalse ? "bool" : index::KindName(kind));
      }
      std::string type_text;
      for (const std::string& ty : types) type_text += (type_text.empty() ? "" : "|") + ty;
      // Distinct primitive values: strings, numbers, true, false, null.
      uint64_t numbers = col->distinct_numbers().size();
      if (numbers == 0 && !col->numbers().empty()) {  // too many for postings: count them
        std::vector<double> v = col->numbers();
        std::sort(v.begin(), v.end());
        numbers = static_cast<uint64_t>(std::unique(v.begin(), v.end()) - v.begin());
      }
      uint64_t distinct = col->dictionary().size() + numbers + (count(index::Kind::kNull) > 0) +
                          (count(index::Kind::kFalse) > 0) + (count(index::Kind::kTrue) > 0);
      bool primitive = distinct > 0;
      rows.push_back({path, type_text, Grouped(col->present().Cardinality()),
                      primitive ? Grouped(distinct) : "-"});
    }
    if (rows.empty()) continue;
    any = true;
    size_t wp = 4, wt = 5, wd = 7, wn = 8;
    for (const Row& r : rows) {
      wp = std::max(wp, DisplayWidth(r.path));
      wt = std::max(wt, r.types.size());
      wd = std::max(wd, r.defined.size());
      wn = std::max(wn, r.distinct.size());
    }
    out_ << (table->modules() ? "devices.modules" : "devices") << ": "
         << Plural(table->live_count(), "twin", "twins") << ", "
         << Plural(rows.size(), "path", "paths")
         << (prefix.empty() ? "" : " under '" + prefix + "'") << "\n";
    out_ << fmt::format("  {:<{}}  {:<{}}  {:>{}}  {:>{}}\n", "path", wp, "types", wt, "defined",
                        wd, "distinct", wn);
    for (const Row& r : rows) {
      if (Interrupted()) {
        Interruption();
        return;
      }
      std::string fill(wp - DisplayWidth(r.path), ' ');
      out_ << fmt::format("  {}{}  {:<{}}  {:>{}}  {:>{}}\n", r.path, fill, r.types, wt, r.defined,
                          wd, r.distinct, wn);
    }
  }
  if (!any && !Interrupted()) {
    out_ << (prefix.empty() ? std::string("(no paths: the fleet is empty)")
                            : "(no paths under '" + prefix + "')")
         << "\n";
  }
}

void Repl::CmdStage(const std::string& stage, const std::string& text) {
  bool query = LooksLikeQuery(text);
  Source source(query ? "<query>" : "<condition>", text);
  if (stage == ".ast") {
    Result<ast::Ast> tree = query ? ParseQuery(source) : ParseCondition(source);
    if (!tree.ok()) return Error(Render(tree.diagnostics(), source));
    out_ << ast::Print(*tree) << "\n";
    return;
  }
  check::BoundQuery q;
  check::BoundCondition c;
  if (query) {
    auto r = CompileQuery(source);
    if (!r.ok()) return Error(Render(r.diagnostics(), source));
    q = std::move(r).value();
  } else {
    auto r = CompileCondition(source);
    if (!r.ok()) return Error(Render(r.diagnostics(), source));
    c = std::move(r).value();
  }
  if (stage == ".bound") {
    out_ << (query ? check::Print(q) : check::Print(c)) << "\n";
    return;
  }
  index::Snapshot snap = fleet_->snapshot();
  const index::Table& table = vm::TableOf(snap, query ? q.collection : c.collection);
  const check::BoundExpr* where = query ? q.where.get() : (c.all ? nullptr : c.expr.get());
  vm::Program program = vm::CompileFilter(where, table);
  out_ << (stage == ".plan" ? vm::Plan(program, table) : program.Explain());
}

Completion Repl::Complete(std::string_view line) const {
  Completion result;
  size_t b = line.size();
  auto word_char = [](unsigned char c) {
    return IsIdentChar(c) || c == '.' || c == '[' || c == ']';
  };
  while (b > 0 && word_char(static_cast<unsigned char>(line[b - 1]))) --b;
  std::string_view word = line.substr(b);
  result.word_begin = b;
  result.replacement = std::string(word);

  std::vector<std::string> found;
  auto add = [&](std::string_view candidate) {
    if (StartsWithIgnoreCase(candidate, word)) found.emplace_back(candidate);
  };
  std::string_view lead = line.substr(0, b);
  size_t first = lead.find_first_not_of(" \t");
  bool in_command =
      first != std::string_view::npos ? lead[first] == '.' : (!word.empty() && word.front() == '.');
  if (in_command && first == std::string_view::npos) {
    // The command name itself.
    for (const CommandInfo& c : kCommands) add(c.name);
    add(".exit");
  } else if (in_command) {
    std::string_view rest = Trim(lead);
    size_t sp = rest.find_first_of(" \t");
    std::string cmd = ToLowerAscii(rest.substr(0, sp));
    bool first_arg = sp == std::string_view::npos || Trim(rest.substr(sp)).empty();
    const char* const* options = nullptr;
    size_t n = 0;
    static const char* const kModes[] = {"json", "table", "ids", "count"};
    static const char* const kEngines[] = {"vm", "ref", "both"};
    static const char* const kOnOff[] = {"on", "off"};
    if (cmd == ".mode") options = kModes, n = std::size(kModes);
    if (cmd == ".engine") options = kEngines, n = std::size(kEngines);
    if (cmd == ".timer") options = kOnOff, n = std::size(kOnOff);
    static const char* const kJobSubs[] = {"schedule", "list",  "get", "cancel",
                                           "devices",  "clock", "sim", "help"};
    if (cmd == ".job") options = kJobSubs, n = std::size(kJobSubs);
    if (options != nullptr) {
      if (first_arg) {
        for (size_t i = 0; i < n; ++i) add(options[i]);
      }
    } else if (cmd == ".load" || cmd == ".save" || cmd == ".limit" || cmd == ".help" ||
               cmd == ".quit" || cmd == ".exit") {
      // File names, numbers: nothing to offer.
    } else {
      in_command = false;  // .paths, .ast, ...: the rest is query text
    }
  }
  if (!in_command && !word.empty()) {
    bool lower = std::islower(static_cast<unsigned char>(word.front())) != 0;
    auto spell = [&](std::string_view s) { return lower ? ToLowerAscii(s) : std::string(s); };
    for (const char* k : kKeywords) add(spell(k));
    for (const check::FunctionInfo& f : check::AllFunctions()) add(spell(f.name));
    for (const char* c : kCollections) add(c);
    // Paths complete one segment at a time: up to and including the next '.'.
    std::set<std::string> segs;
    for (const std::string& p : paths_) {
      if (!StartsWithIgnoreCase(p, word)) continue;
      size_t dot = p.find('.', word.size());
      // A '.' inside [[escaped]] names does not end a segment.
      while (dot != std::string::npos) {
        size_t open = p.rfind("[[", dot), close = p.rfind("]]", dot);
        if (open == std::string::npos || (close != std::string::npos && close > open)) break;
        dot = p.find('.', dot + 1);
      }
      segs.insert(dot == std::string::npos ? p : p.substr(0, dot + 1));
    }
    for (const std::string& s : segs) {
      // "tags.location" and "tags.location.": offer the one that goes on.
      if (s.back() != '.' && segs.count(s + ".") > 0) continue;
      found.push_back(s);
    }
  }
  std::sort(found.begin(), found.end(), LessIgnoreCase);
  found.erase(std::unique(found.begin(), found.end()), found.end());
  if (found.empty()) return result;
  // The longest common prefix (letter case ignored), spelled as the first candidate.
  size_t common = found.front().size();
  for (const std::string& f : found) {
    size_t i = 0;
    while (i < common && i < f.size() &&
           std::tolower(static_cast<unsigned char>(f[i])) ==
               std::tolower(static_cast<unsigned char>(found.front()[i]))) {
      ++i;
    }
    common = i;
  }
  if (common >= word.size()) result.replacement = found.front().substr(0, common);
  result.candidates = std::move(found);
  return result;
}

}  // namespace twinq::tools

namespace twinq::tools {

jobs::JobManager& Repl::Jobs() {
  if (!jobs_) {
    jobs::Clock& clock = job_clock_ ? static_cast<jobs::Clock&>(*job_clock_) : jobs::DefaultClock();
    if (!job_devices_) job_devices_ = std::make_unique<jobs::SimulatedDevices>(clock);
    jobs::JobManagerOptions options;
    // On a fake clock devices run one at a time, so that virtual time (and every timestamp) is
    // deterministic.
    if (job_clock_) options.device_concurrency = 1;
    jobs_ = std::make_unique<jobs::JobManager>(*fleet_, clock, job_devices_.get(), options);
  }
  return *jobs_;
}

void Repl::CmdJob(const std::string& arg) {
  static const char* kJobHelp =
      ".job schedule JSON        schedule a job (a JobRequest body; startTime defaults to now,\n"
      "                          maxExecutionTimeInSeconds to 3600); a due job runs at once\n"
      ".job list [type=T] [status=S] [pageSize=N] [continuation=TOKEN]\n"
      ".job get ID | .job cancel ID\n"
      ".job devices [CONDITION | SELECT * FROM devices.jobs ...]   device job records\n"
      ".job clock TIME|system    a fake clock at TIME (virtual time), or the system clock\n"
      ".job sim [latency=MS[-MS]] [offline=SHARE] [silent=SHARE] [error=SHARE] [seed=N]\n"
      "                          how the simulated devices answer direct methods\n"
      "Changing the clock or the simulation, or loading a fleet, forgets the jobs.\n";
  size_t space = arg.find_first_of(" \t");
  std::string sub = arg.substr(0, space);
  std::string rest(space == std::string::npos ? "" : Trim(std::string_view(arg).substr(space)));
  auto print = [&](const Value& v) { out_ << ToJson(v) << "\n"; };
  // key=value words.
  auto options = [&](std::map<std::string, std::string>* out) {
    std::istringstream words(rest);
    std::string w;
    while (words >> w) {
      size_t eq = w.find('=');
      if (eq == std::string::npos) {
        Error(fmt::format(".job {}: expected key=value, not '{}'", sub, w));
        return false;
      }
      (*out)[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return true;
  };
  if (sub.empty() || sub == "help") {
    out_ << kJobHelp;
  } else if (sub == "schedule") {
    Expected<Value> body = ParseJson(rest, "<job request>");
    if (!body.ok()) return Error(body.error().message);
    if (!body->is_object()) return Error(".job schedule: expected a JSON object");
    Object o = body->as_object();
    jobs::JobManager& jm = Jobs();
    jobs::Clock& clock = job_clock_ ? static_cast<jobs::Clock&>(*job_clock_) : jobs::DefaultClock();
    if (body->Find("startTime") == nullptr) {
      o.emplace_back("startTime", Value::String(jobs::FormatTime(clock.Now())));
    }
    if (body->Find("maxExecutionTimeInSeconds") == nullptr) {
      o.emplace_back("maxExecutionTimeInSeconds", Value::Number(3600));
    }
    Expected<Value> r = jm.Schedule(Value::MakeObject(std::move(o)));
    if (!r.ok()) return Error(r.error().message);
    std::string id = r->Find("jobId")->as_string();
    jm.Poll();
    jm.Wait(id);
    print(*jm.Get(id));
  } else if (sub == "list") {
    std::map<std::string, std::string> kv;
    if (!options(&kv)) return;
    PageRequest page;
    if (kv.count("pageSize")) {
      auto [end, ec] = std::from_chars(
          kv["pageSize"].data(), kv["pageSize"].data() + kv["pageSize"].size(), page.page_size);
      if (ec != std::errc() || *end != '\0') return Error(".job list: pageSize needs a number");
    }
    page.continuation = kv["continuation"];
    jobs::JobManager& jm = Jobs();
    jm.Poll();  // jobs whose start has come
    Expected<QueryResult> r = jm.List({kv["type"], kv["status"]}, page);
    if (!r.ok()) return Error(r.error().message);
    for (const Value& v : r->rows) print(v);
    if (!r->continuation.empty()) out_ << "continuation=" << r->continuation << "\n";
  } else if (sub == "get" || sub == "cancel") {
    if (rest.empty()) return Error(fmt::format("usage: .job {} ID", sub));
    jobs::JobManager& jm = Jobs();
    Expected<Value> r = sub == "get" ? jm.Get(rest) : jm.Cancel(rest);
    if (!r.ok()) return Error(r.error().message);
    print(*r);
  } else if (sub == "devices") {
    std::string q = rest.empty() ? "SELECT * FROM devices.jobs" : rest;
    if (!EqualsIgnoreCase(q.substr(0, 6), "select")) q = "SELECT * FROM devices.jobs WHERE " + q;
    Expected<QueryResult> r = Jobs().QueryDeviceJobs(q);
    if (!r.ok()) return Error(r.error().message);
    size_t shown = 0;
    for (const Value& v : r->rows) {
      if (limit_ != 0 && shown == limit_) break;
      print(v);
      ++shown;
    }
    if (shown < r->rows.size()) PrintMore(r->rows.size() - shown);
  } else if (sub == "clock") {
    if (rest.empty()) return Error("usage: .job clock TIME|system");
    jobs_.reset();
    job_devices_.reset();
    if (rest == "system") {
      job_clock_.reset();
      return;
    }
    int64_t t = 0;
    std::string why;
    if (!jobs::ParseTime(rest, &t, &why)) return Error(".job clock: " + why);
    job_clock_ = std::make_unique<jobs::FakeClock>(t);
  } else if (sub == "sim") {
    std::map<std::string, std::string> kv;
    if (!options(&kv)) return;
    jobs::SimulationSettings s;
    for (const auto& [k, v] : kv) {
      char* end = nullptr;
      if (k == "latency") {
        size_t dash = v.find('-', 1);
        s.latency_min_ms = std::strtoll(v.c_str(), &end, 10);
        s.latency_max_ms = dash == std::string::npos ? s.latency_min_ms
                                                     : std::strtoll(v.c_str() + dash + 1, &end, 10);
      } else if (k == "offline" || k == "silent" || k == "error") {
        double d = std::strtod(v.c_str(), &end);
        (k == "offline" ? s.offline_share : k == "silent" ? s.silent_share : s.error_share) = d;
      } else if (k == "seed") {
        s.seed = std::strtoull(v.c_str(), &end, 10);
      } else {
        return Error(fmt::format(".job sim: unknown setting '{}'", k));
      }
      if (end == nullptr || *end != '\0' || v.empty()) {
        return Error(fmt::format(".job sim: bad value '{}' for {}", v, k));
      }
    }
    jobs_.reset();
    jobs::Clock& clock = job_clock_ ? static_cast<jobs::Clock&>(*job_clock_) : jobs::DefaultClock();
    job_devices_ = std::make_unique<jobs::SimulatedDevices>(clock, s);
  } else {
    Error(fmt::format(".job: unknown subcommand '{}'; .job help lists them", sub));
  }
}

}  // namespace twinq::tools
