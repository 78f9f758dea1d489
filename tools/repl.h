// The twinq REPL: statements (queries, job conditions) and dot-commands over one fleet.
//
// The Repl class holds the session (fleet, output mode, engine, limit, timer) and reads lines
// from a LineReader, writing results to one ostream and errors to another, so that the scripted
// tests drive it from a stream and tools/cmd_repl.cc drives it from libedit on a terminal.
//
// Input: a line starting with '.' (when no statement is pending) is a dot-command and ends at
// the end of the line; anything else accumulates until a ';' outside string literals and
// [[escaped names]], or an empty line. At end of input a pending statement is run.
//
// Ctrl-C: the Repl never touches signals itself. The front end sets the atomic flag given in
// ReplOptions::interrupt (from a SIGINT handler); the Repl checks it in its own loops (printing
// rows, ids, paths) and, because the engines' calls cannot be interrupted, runs every evaluation
// on a worker thread and stops waiting for it when the flag is set. An abandoned worker keeps
// its own copies of what it reads (the index Snapshot and the bound IR are owned by the job), so
// it finishes harmlessly in the background and its result is dropped.
#ifndef TWINQ_TOOLS_REPL_H_
#define TWINQ_TOOLS_REPL_H_

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/json_reader.h"
#include "index/fleet.h"

namespace twinq::jobs {
class Clock;
class FakeClock;
class JobManager;
class SimulatedDevices;
}  // namespace twinq::jobs

namespace twinq::tools {

// A source of input lines.
class LineReader {
 public:
  enum class Status { kLine, kEof, kInterrupted };
  virtual ~LineReader() = default;
  // Reads one line without its terminator. `continuation`: a statement is pending (the prompt
  // shows it). kInterrupted: the user pressed Ctrl-C while typing (the pending statement is
  // dropped).
  virtual Status Read(bool continuation, std::string* line) = 0;
  // A complete statement or dot-command, for the history.
  virtual void Remember(const std::string& /*entry*/) {}
};

// Lines from a stream (stdin when it is not a terminal, tests).
class StreamLineReader : public LineReader {
 public:
  explicit StreamLineReader(std::istream& in) : in_(in) {}
  Status Read(bool continuation, std::string* line) override;

 private:
  std::istream& in_;
};

struct ReplOptions {
  // A terminal session (banner decorations, "^C" notes). Scripted sessions print results only.
  bool interactive = false;
  // Set (by a SIGINT handler) to interrupt the running statement; the Repl clears it. Null: no
  // interruption (evaluations still run on a worker thread).
  std::atomic<bool>* interrupt = nullptr;
  // Test hook (TWINQ_REPL_TEST_EVAL_DELAY_MS): each evaluation's worker sleeps this long first,
  // so the terminal test can press Ctrl-C during a long evaluation deterministically.
  int eval_delay_ms = 0;
  // Test hook (TWINQ_REPL_TEST_DROP_VM_ROW): the VM's result loses its last row, so that the
  // scripted tests can see `.engine both` report a difference.
  bool drop_vm_row = false;
};

// What TAB does with the word before the cursor.
struct Completion {
  size_t word_begin = 0;                // byte offset of the word in the line
  std::string replacement;              // replaces line[word_begin, cursor)
  std::vector<std::string> candidates;  // every match (for listing when ambiguous)
};

class Repl {
 public:
  enum class Mode { kJson, kTable, kIds, kCount };
  enum class Engine { kVm, kRef, kBoth };

  Repl(std::ostream& out, std::ostream& err, ReplOptions options);
  ~Repl();
  Repl(const Repl&) = delete;
  Repl& operator=(const Repl&) = delete;

  // Replaces the fleet; `name` describes it in messages ("demo fleet", a file name).
  void SetFleet(std::unique_ptr<index::Fleet> fleet, std::string name);
  // "50,000 device twins, 35,136 module twins".
  std::string FleetSummary() const;

  // Reads and runs until end of input or .quit. Returns the exit code: 0, or (scripted
  // sessions) 2 when a statement or command failed.
  int Run(LineReader& in);
  // Runs one complete statement (without the ';') or one dot-command line. Returns false for
  // .quit.
  bool Execute(const std::string& text);

  // TAB completion of the word that ends at `line.size()` (the text before the cursor):
  // keywords, function names, collection names, the fleet's property paths (one segment at a
  // time) and, at the start of a line, dot-commands and their arguments.
  Completion Complete(std::string_view line) const;

  // True while an abandoned (interrupted) evaluation is still running on its worker thread:
  // the process should then leave with _Exit rather than run static destructors under it.
  bool WorkersRunning() const;
  bool failed() const { return failed_; }

 private:
  struct Job;
  void RunStatement(const std::string& text);
  bool RunCommand(const std::string& line);
  void CmdHelp();
  void CmdLoad(const std::string& file);
  void CmdSave(const std::string& file);
  void CmdPaths(const std::string& prefix);
  void CmdStage(const std::string& stage, const std::string& text);
  // .job schedule|list|get|cancel|devices|clock|sim ... (docs/jobs.md).
  void CmdJob(const std::string& arg);
  jobs::JobManager& Jobs();
  bool Wait(const std::shared_ptr<Job>& job);
  // These return false when Ctrl-C stopped them.
  bool PrintIds(const std::vector<std::string>& ids, uint64_t total, bool modules);
  bool PrintRows(const std::vector<Value>& rows);
  bool PrintTable(const std::vector<Value>& rows, size_t shown);
  void PrintMore(uint64_t more);
  bool Interrupted();
  void Interruption();
  void Error(const std::string& message);
  void RebuildPaths();

  std::ostream& out_;
  std::ostream& err_;
  ReplOptions options_;
  std::unique_ptr<index::Fleet> fleet_;
  std::string fleet_name_;
  std::vector<std::string> paths_;  // completion candidates from the fleet, sorted
  // The reference engine's documents (index::ToTwinSet), built on first use per fleet version.
  std::shared_ptr<const TwinSet> ref_docs_;
  uint64_t ref_version_ = 0;
  std::vector<std::shared_ptr<Job>> abandoned_;
  Mode mode_ = Mode::kJson;
  Engine engine_ = Engine::kVm;
  size_t limit_ = 20;
  bool timer_ = false;
  bool failed_ = false;
  // Jobs on the loaded fleet (created on first use; dropped with the fleet). Declared last so
  // that the manager, which refers to the fleet, the clock and the devices, goes first.
  std::unique_ptr<jobs::FakeClock> job_clock_;  // .job clock TIME; null: the system clock
  std::unique_ptr<jobs::SimulatedDevices> job_devices_;
  std::unique_ptr<jobs::JobManager> jobs_;
};

// Helpers shared with cmd_repl.cc.
// The byte offset just after the first ';' of `text` outside string literals and [[escaped
// names]], or npos.
size_t FindStatementEnd(std::string_view text);
// 12345 -> "12,345".
std::string Grouped(uint64_t n);
// True unless PATH exists and is not a regular file (a directory, a device, a FIFO): those are
// refused before Fleet::Open (which would try to allocate a directory's size), reading twins
// (/dev/zero never ends) and Fleet::Save (which renames its temporary file over PATH).
bool RegularOrAbsent(const std::string& path);

}  // namespace twinq::tools

#endif  // TWINQ_TOOLS_REPL_H_
