// twinq (no arguments) and twinq repl [--twins F | --index F]: the interactive shell.
//
// On a terminal, lines are read with libedit (line editing, TAB completion, history in
// $HOME/.twinq_history); otherwise statements are read from stdin and only results are printed
// (scriptable). The session itself is tools/repl.h.
//
// Ctrl-C: a SIGINT handler (installed without SA_RESTART, on terminals only) sets one atomic
// flag. While a line is being edited, our own libedit read function sees the interrupted read
// and turns it into ^C, bound to a function that abandons the line. While a statement runs, the
// Repl polls the flag: its printing loops stop, and an evaluation (which the engines cannot
// interrupt) is abandoned on its worker thread (see repl.h). Ctrl-D at an empty line quits.
#include <fmt/format.h>
#include <histedit.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "engine/common/json_reader.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "tools/commands.h"
#include "tools/repl.h"

namespace twinq::tools {

namespace {

constexpr uint64_t kDemoDevices = 50000;

std::atomic<bool> g_interrupt{false};
std::atomic<bool> g_resized{false};

extern "C" void OnSigint(int) { g_interrupt.store(true); }
extern "C" void OnSigwinch(int) { g_resized.store(true); }

// Reads lines with libedit: prompt, emacs key bindings, history, TAB completion, Ctrl-C.
class EditLineReader : public LineReader {
 public:
  explicit EditLineReader(const Repl& repl) : repl_(repl) {
    hist_ = history_init();
    HistEvent ev;
    history(hist_, &ev, H_SETSIZE, 1000);
    history(hist_, &ev, H_SETUNIQUE, 1);
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      history_file_ = std::string(home) + "/.twinq_history";
      history(hist_, &ev, H_LOAD, history_file_.c_str());  // a missing file is fine
    }
    el_ = el_init("twinq", stdin, stdout, stderr);
    el_set(el_, EL_CLIENTDATA, this);
    el_set(el_, EL_EDITOR, "emacs");
    el_set(el_, EL_PROMPT, &EditLineReader::Prompt);
    el_set(el_, EL_HIST, history, hist_);
    el_set(el_, EL_GETCFN, &EditLineReader::GetChar);
    el_set(el_, EL_ADDFN, "twinq-complete", "complete a word", &EditLineReader::CompleteFn);
    el_set(el_, EL_ADDFN, "twinq-interrupt", "abandon the line", &EditLineReader::InterruptFn);
    el_set(el_, EL_BIND, "^I", "twinq-complete", nullptr);
    el_set(el_, EL_BIND, "^C", "twinq-interrupt", nullptr);
    el_source(el_, nullptr);  // the user's ~/.editrc, if any
  }
  ~EditLineReader() override {
    el_end(el_);
    history_end(hist_);
  }

  Status Read(bool continuation, std::string* line) override {
    continuation_ = continuation;
    interrupted_ = false;
    g_interrupt.store(false);
    int count = 0;
    const char* s = el_gets(el_, &count);
    if (interrupted_) return Status::kInterrupted;
    if (s == nullptr || count <= 0) {
      std::fputc('\n', stdout);
      std::fflush(stdout);
      return Status::kEof;
    }
    line->assign(s, static_cast<size_t>(count));
    while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
    return Status::kLine;
  }

  void Remember(const std::string& entry) override {
    if (entry.empty()) return;
    HistEvent ev;
    history(hist_, &ev, H_ENTER, entry.c_str());
    // Saved after every entry, so that a killed session keeps its history; failures (read-only
    // home, full disk) are silent.
    if (!history_file_.empty()) history(hist_, &ev, H_SAVE, history_file_.c_str());
  }

 private:
  static EditLineReader* Self(EditLine* el) {
    void* data = nullptr;
    el_get(el, EL_CLIENTDATA, &data);
    return static_cast<EditLineReader*>(data);
  }

  static const char* Prompt(EditLine* el) {
    return Self(el)->continuation_ ? "   ...> " : "twinq> ";
  }

  // Reads one character (UTF-8 decoded). An interrupted read with Ctrl-C pending gives ^C,
  // which is bound to InterruptFn; a terminal resize is passed on to libedit.
  static int GetChar(EditLine* el, wchar_t* out) {
    auto read_byte = [el](unsigned char* b) -> int {
      for (;;) {
        if (g_interrupt.exchange(false)) return 3;
        if (g_resized.exchange(false)) el_resize(el);
        ssize_t n = read(STDIN_FILENO, b, 1);
        if (n == 1) return 1;
        if (n == 0) return 0;
        if (errno != EINTR) return -1;
      }
    };
    unsigned char b = 0;
    int r = read_byte(&b);
    if (r == 3) {
      *out = 3;
      return 1;
    }
    if (r <= 0) return r;
    size_t more = b < 0x80             ? 0
                  : (b & 0xE0) == 0xC0 ? 1
                  : (b & 0xF0) == 0xE0 ? 2
                  : (b & 0xF8) == 0xF0 ? 3
                                       : 0;
    wchar_t c = more == 0 ? b : more == 1 ? (b & 0x1F) : more == 2 ? (b & 0x0F) : (b & 0x07);
    for (size_t i = 0; i < more; ++i) {
      unsigned char cont = 0;
      r = read_byte(&cont);
      if (r == 3) {
        *out = 3;
        return 1;
      }
      if (r <= 0) return r;
      if ((cont & 0xC0) != 0x80) break;  // malformed: keep what we have
      c = static_cast<wchar_t>((c << 6) | (cont & 0x3F));
    }
    *out = c;
    return 1;
  }

  static unsigned char InterruptFn(EditLine* el, int) {
    Self(el)->interrupted_ = true;
    std::fputs("^C\r\n", stdout);
    std::fflush(stdout);
    return CC_NEWLINE;
  }

  static unsigned char CompleteFn(EditLine* el, int) {
    EditLineReader* self = Self(el);
    const LineInfo* li = el_line(el);
    std::string before(li->buffer, static_cast<size_t>(li->cursor - li->buffer));
    Completion c = self->repl_.Complete(before);
    if (c.candidates.empty()) return CC_REFRESH_BEEP;
    std::string word = before.substr(c.word_begin);
    if (c.replacement != word) {
      size_t chars = 0;
      for (unsigned char ch : word) chars += (ch & 0xC0) != 0x80;
      el_deletestr(el, static_cast<int>(chars));
      el_insertstr(el, c.replacement.c_str());
      return CC_REFRESH;
    }
    if (c.candidates.size() == 1) return CC_NORM;
    // Ambiguous: list the candidates in columns below the line, then redraw it.
    size_t width = 80;
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
    size_t longest = 0;
    for (const std::string& s : c.candidates) longest = std::max(longest, s.size());
    size_t columns = std::max<size_t>(1, width / (longest + 2));
    constexpr size_t kMaxListed = 100;
    std::string text = "\n";
    size_t listed = std::min(c.candidates.size(), kMaxListed);
    for (size_t i = 0; i < listed; ++i) {
      text += c.candidates[i];
      bool end = (i + 1) % columns == 0 || i + 1 == listed;
      text += end ? std::string("\n") : std::string(longest + 2 - c.candidates[i].size(), ' ');
    }
    if (c.candidates.size() > listed) {
      text += "... " + Grouped(c.candidates.size() - listed) + " more\n";
    }
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    return CC_REDISPLAY;
  }

  const Repl& repl_;
  EditLine* el_ = nullptr;
  History* hist_ = nullptr;
  std::string history_file_;
  bool continuation_ = false;
  bool interrupted_ = false;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

constexpr const char* kUsage =
    "usage: twinq [repl [--twins FILE | --index FILE]]\n"
    "  An interactive shell for queries and job conditions. Without a fleet, it opens on a\n"
    "  built-in demo fleet: 50,000 generated device twins (seed 7, a fifth of them IoT Edge\n"
    "  devices with module twins). Statements end with ';' or an empty line; .help lists the\n"
    "  dot-commands. On a terminal: line editing, TAB completion, history in\n"
    "  $HOME/.twinq_history, Ctrl-C interrupts, Ctrl-D quits. Otherwise statements are read\n"
    "  from stdin and only results are printed (exit 2 when a statement failed).\n";

}  // namespace

int CmdRepl(const Args& args) {
  std::string twins, index_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--twins" || a == "--index") {
      if (i + 1 >= args.size()) {
        std::cerr << "twinq repl: " << a << " needs a value\n";
        return 1;
      }
      (a == "--twins" ? twins : index_file) = args[++i];
    } else {
      std::cerr << "twinq repl: unexpected argument '" << a << "'\n" << kUsage;
      return 1;
    }
  }
  if (!twins.empty() && !index_file.empty()) {
    std::cerr << "twinq repl: give either --twins or --index, not both\n";
    return 1;
  }
  for (const std::string* path : {&twins, &index_file}) {
    if (!path->empty() && !RegularOrAbsent(*path)) {
      std::cerr << "twinq repl: " << *path << ": not a regular file\n";
      return 1;
    }
  }
  bool interactive = isatty(STDIN_FILENO) != 0;

  // The fleet.
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<index::Fleet> fleet;
  std::string name, how;
  if (!index_file.empty()) {
    auto opened = index::Fleet::Open(index_file);
    if (!opened.ok()) {
      std::cerr << "twinq repl: " << opened.error().message << "\n";
      return 1;
    }
    fleet = std::move(opened).value();
    name = index_file;
    how = "opened";
  } else if (!twins.empty()) {
    fleet = std::make_unique<index::Fleet>();
    Expected<size_t> n = fleet->LoadTwinsFile(twins);
    if (!n.ok()) {
      std::cerr << "twinq repl: " << n.error().message << "\n";
      return 1;
    }
    name = twins;
    how = "loaded";
  } else {
    if (interactive) {
      std::cerr << "twinq: building the demo fleet (" << Grouped(kDemoDevices)
                << " generated device twins)...\n";
    }
    index::FleetSpec spec;
    spec.devices = kDemoDevices;
    spec.seed = 7;
    spec.module_share = 0.2;
    {  // the text and the parsed documents are dropped once the fleet is built
      std::string text;
      index::GenerateFleet(spec, [&text](std::string_view line) {
        text += line;
        text += '\n';
      });
      fleet = std::make_unique<index::Fleet>();
      Expected<size_t> n = fleet->LoadTwinsText(text, "<demo fleet>");
      if (!n.ok()) {
        std::cerr << "twinq repl: " << n.error().message << "\n";
        return 1;
      }
    }
    name = "demo fleet";
    how = "built";
  }
  std::string took = fmt::format("{:.3f}", Seconds(start));

  ReplOptions options;
  options.interactive = interactive;
  if (const char* d = std::getenv("TWINQ_REPL_TEST_EVAL_DELAY_MS"); d != nullptr) {
    options.eval_delay_ms = std::atoi(d);
  }
  if (const char* d = std::getenv("TWINQ_REPL_TEST_DROP_VM_ROW"); d != nullptr && *d == '1') {
    options.drop_vm_row = true;
  }
  if (interactive) options.interrupt = &g_interrupt;
  Repl repl(std::cout, std::cerr, options);
  repl.SetFleet(std::move(fleet), name);
  std::string summary = repl.FleetSummary();

  int rc = 0;
  if (interactive) {
    std::setlocale(LC_CTYPE, "");  // libedit's multibyte handling
    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = OnSigwinch;
    sigaction(SIGWINCH, &sa, nullptr);
    std::cout << "twinq: " << name << ", " << summary << ", " << how << " in " << took << " s"
              << (index_file.empty() && twins.empty() ? " (generated: seed 7, module share 0.2)"
                                                      : "")
              << "\nStatements end with ';' or an empty line. .help lists the commands, TAB "
                 "completes, Ctrl-D quits.\n";
    EditLineReader reader(repl);
    rc = repl.Run(reader);
  } else {
    std::cerr << "twinq repl: " << name << ", " << summary << ", " << how << " in " << took
              << " s\n";
    StreamLineReader reader(std::cin);
    rc = repl.Run(reader);
  }
  std::cout.flush();
  std::cerr.flush();
  // An interrupted evaluation still running on its worker: leave without running static
  // destructors under it.
  if (repl.WorkersRunning()) std::_Exit(rc);
  return rc;
}

}  // namespace twinq::tools
