// twinq job: the IoT Hub Jobs model (docs/jobs.md) from the command line. The process is
// one-shot: a job whose start is due runs to completion in-process (a live progress bar on
// stderr when it is a terminal), its final JobResponse is printed as JSON, the updated fleet can
// be written with -o, and --jobs FILE keeps the jobs (requests, statuses, device records) between
// runs, so that get, list, cancel, devices and run work on what earlier runs left.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "engine/common/json_reader.h"
#include "index/fleet.h"
#include "jobs/clock.h"
#include "jobs/job_manager.h"
#include "jobs/simulated_devices.h"
#include "tools/commands.h"

namespace twinq::tools {

namespace {

constexpr const char* kUsage =
    "usage: twinq job <subcommand> [options]\n"
    "  schedule-twin-update (--twins F | --index F) --id JOB --condition COND --patch JSON\n"
    "                       [--start TIME] [--max-time S] [--batch N] [common options]\n"
    "      a scheduleUpdateTwin job; JSON is the updateTwin body ({\"tags\":{...}} and/or\n"
    "      {\"properties\":{\"desired\":{...}}}; \"etag\":\"*\" is added)\n"
    "  schedule-method (--twins F | --index F) --id JOB --condition COND --method NAME\n"
    "                  [--payload JSON] [--response-timeout S] [--connect-timeout S]\n"
    "                  [--start TIME] [--max-time S] [--concurrency N] [simulation options]\n"
    "                  [common options]\n"
    "      a scheduleDeviceMethod job, calling simulated devices\n"
    "  schedule (--twins F | --index F) --request JSON|@FILE [common options]\n"
    "      a job from a JobRequest body as the REST API takes it\n"
    "  run (--twins F | --index F) --jobs STATE [common options]   runs the jobs now due\n"
    "  get --jobs STATE JOB          the JobResponse of a job\n"
    "  list --jobs STATE [--type T] [--status S] [--page-size N] [--continuation TOKEN]\n"
    "  cancel --jobs STATE JOB       cancels a queued or scheduled job\n"
    "  devices --jobs STATE ['CONDITION' | 'SELECT * FROM devices.jobs ...'] [--page-size N]\n"
    "                               [--continuation TOKEN]   device job records\n"
    "common options:\n"
    "  --jobs STATE         job state file: read if it exists, written back after the command\n"
    "  -o FILE              write the fleet after the jobs (.twinq: an index, else NDJSON)\n"
    "  --start TIME         ISO-8601 start time, 'now' (default) or +SECONDS from now\n"
    "  --max-time S         maxExecutionTimeInSeconds (default 3600)\n"
    "  --max-active N       max active jobs (default 10)\n"
    "  --no-charset-rule    do not apply the Jobs property character rule\n"
    "  --clock TIME         run on a fake clock starting at TIME (virtual time: deterministic;\n"
    "                       method jobs then call one device at a time)\n"
    "  --progress | --no-progress   force the progress bar on or off (default: stderr is a tty)\n"
    "simulation options (schedule-method, run):\n"
    "  --sim-latency MS[-MS]  device latency, fixed or uniform in a range (default 0)\n"
    "  --sim-offline SHARE    share of devices offline (default 0)\n"
    "  --sim-silent SHARE     share of devices that never answer (default 0)\n"
    "  --sim-error SHARE      share of devices answering status 500 (default 0)\n"
    "  --sim-seed N           seed of the per-device draws (default 1)\n"
    "Exit: 0 job completed (or left scheduled), 1 usage or input error, 2 request rejected,\n"
    "4 the job failed or was cancelled.\n";

struct Options {
  std::string sub;
  std::string twins, index, jobs_file, out;
  std::string id, condition, patch, method, payload, request, start = "now", clock;
  std::string type_filter, status_filter, continuation;
  std::vector<std::string> positional;
  int64_t max_time = 3600;
  int response_timeout = -1, connect_timeout = -1;
  size_t batch = 10000, concurrency = 16, page_size = 0, max_active = 10;
  bool charset = true;
  int progress = -1;  // -1: when stderr is a tty
  jobs::SimulationSettings sim;
};

bool ParseNumber(const std::string& s, double lo, double hi, double* out) {
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d >= lo && d <= hi)) return false;
  *out = d;
  return true;
}

// Returns -1 to go on, else an exit code.
int ParseArgs(const Args& args, Options* o) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 1;
  }
  o->sub = args[0];
  if (o->sub == "-h" || o->sub == "--help") {
    std::cout << kUsage;
    return 0;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) {
        std::cerr << "twinq job: " << a << " needs a value\n";
        return false;
      }
      *out = args[++i];
      return true;
    };
    auto number = [&](double lo, double hi, double* out) {
      std::string v;
      if (!value(&v)) return false;
      if (!ParseNumber(v, lo, hi, out)) {
        std::cerr << "twinq job: " << a << " needs a number from " << lo << " to " << hi
                  << ", not '" << v << "'\n";
        return false;
      }
      return true;
    };
    double d = 0;
    std::string s;
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--twins") {
      if (!value(&o->twins)) return 1;
    } else if (a == "--index") {
      if (!value(&o->index)) return 1;
    } else if (a == "--jobs") {
      if (!value(&o->jobs_file)) return 1;
    } else if (a == "-o") {
      if (!value(&o->out)) return 1;
    } else if (a == "--id") {
      if (!value(&o->id)) return 1;
    } else if (a == "--condition") {
      if (!value(&o->condition)) return 1;
    } else if (a == "--patch") {
      if (!value(&o->patch)) return 1;
    } else if (a == "--method") {
      if (!value(&o->method)) return 1;
    } else if (a == "--payload") {
      if (!value(&o->payload)) return 1;
    } else if (a == "--request") {
      if (!value(&o->request)) return 1;
    } else if (a == "--start") {
      if (!value(&o->start)) return 1;
    } else if (a == "--clock") {
      if (!value(&o->clock)) return 1;
    } else if (a == "--type") {
      if (!value(&o->type_filter)) return 1;
    } else if (a == "--status") {
      if (!value(&o->status_filter)) return 1;
    } else if (a == "--continuation") {
      if (!value(&o->continuation)) return 1;
    } else if (a == "--max-time") {
      if (!number(1, 1e12, &d)) return 1;
      o->max_time = static_cast<int64_t>(d);
    } else if (a == "--response-timeout") {
      if (!number(-1e9, 1e9, &d)) return 1;
      o->response_timeout = static_cast<int>(d);
    } else if (a == "--connect-timeout") {
      if (!number(-1e9, 1e9, &d)) return 1;
      o->connect_timeout = static_cast<int>(d);
    } else if (a == "--batch") {
      if (!number(1, 1e7, &d)) return 1;
      o->batch = static_cast<size_t>(d);
    } else if (a == "--concurrency") {
      if (!number(1, 4096, &d)) return 1;
      o->concurrency = static_cast<size_t>(d);
    } else if (a == "--page-size") {
      if (!number(1, 1e9, &d)) return 1;
      o->page_size = static_cast<size_t>(d);
    } else if (a == "--max-active") {
      if (!number(1, 1e6, &d)) return 1;
      o->max_active = static_cast<size_t>(d);
    } else if (a == "--no-charset-rule") {
      o->charset = false;
    } else if (a == "--progress") {
      o->progress = 1;
    } else if (a == "--no-progress") {
      o->progress = 0;
    } else if (a == "--sim-latency") {
      if (!value(&s)) return 1;
      size_t dash = s.find('-', 1);
      double lo = 0, hi = 0;
      if (!ParseNumber(s.substr(0, dash), 0, 1e9, &lo) ||
          (dash != std::string::npos && !ParseNumber(s.substr(dash + 1), lo, 1e9, &hi))) {
        std::cerr << "twinq job: --sim-latency needs MS or MS-MS, not '" << s << "'\n";
        return 1;
      }
      o->sim.latency_min_ms = static_cast<int64_t>(lo);
      o->sim.latency_max_ms = static_cast<int64_t>(dash == std::string::npos ? lo : hi);
    } else if (a == "--sim-offline") {
      if (!number(0, 1, &o->sim.offline_share)) return 1;
    } else if (a == "--sim-silent") {
      if (!number(0, 1, &o->sim.silent_share)) return 1;
    } else if (a == "--sim-error") {
      if (!number(0, 1, &o->sim.error_share)) return 1;
    } else if (a == "--sim-seed") {
      if (!number(0, 1e18, &d)) return 1;
      o->sim.seed = static_cast<uint64_t>(d);
    } else if (a == "--") {
      for (++i; i < args.size(); ++i) o->positional.push_back(args[i]);
    } else if (!a.empty() && a[0] == '-' && a != "*") {
      std::cerr << "twinq job: unknown option '" << a << "'\n" << kUsage;
      return 1;
    } else {
      o->positional.push_back(a);
    }
  }
  return -1;
}

Expected<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot read"};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Expected<bool> WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error{path + ": cannot write"};
    out << text;
    if (!out.flush()) return Error{path + ": cannot write"};
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error{path + ": cannot write: " + ec.message()};
  return true;
}

Expected<bool> WriteFleet(const index::Fleet& fleet, const std::string& path) {
  if (path.size() > 6 && path.compare(path.size() - 6, 6, ".twinq") == 0) {
    Expected<size_t> n = fleet.Save(path);
    if (!n.ok()) return n.error();
    return true;
  }
  index::Snapshot s = fleet.snapshot();
  std::string text;
  for (const index::Table* t : {&s.devices(), &s.modules()}) {
    for (uint32_t row : t->order()) {
      text += t->doc_json(row);
      text += '\n';
    }
  }
  return WriteFileAtomically(path, text);
}

std::string Bar(const jobs::DeviceJobStatistics& s) {
  int64_t done = s.succeeded_count + s.failed_count;
  double f = s.device_count == 0 ? 1.0 : static_cast<double>(done) / s.device_count;
  int width = 30, fill = static_cast<int>(f * width);
  return fmt::format("[{}{}] {:5.1f}% {}/{} ok {} failed {} running {} pending",
                     std::string(fill, '#'), std::string(width - fill, '.'), f * 100, done,
                     s.device_count, s.succeeded_count, s.failed_count, s.running_count,
                     s.pending_count);
}

void Summary(jobs::JobManager& jm, const std::string& id) {
  Expected<jobs::DeviceJobStatistics> s = jm.Statistics(id);
  Expected<jobs::JobStatus> st = jm.Status(id);
  Expected<jobs::JobTimings> t = jm.Timings(id);
  if (!s.ok() || !st.ok() || !t.ok()) return;
  std::cerr << fmt::format(
      "job {} {}: {} devices, {} succeeded, {} failed ({} canceled), {} running, {} pending; "
      "targets resolved in {:.1f} ms, executed in {:.1f} ms\n",
      id, jobs::JobStatusName(*st), s->device_count, s->succeeded_count, s->failed_count,
      s->canceled_count, s->running_count, s->pending_count, t->resolve_ms, t->execute_ms);
}

// Waits for the runner of `id`, drawing the progress bar meanwhile.
void WaitWithProgress(jobs::JobManager& jm, const std::string& id, bool progress) {
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    jm.Wait(id);
    done = true;
  });
  while (progress && !done.load()) {
    Expected<jobs::DeviceJobStatistics> s = jm.Statistics(id);
    if (s.ok()) std::cerr << "\r" << id << " " << Bar(*s) << "\x1b[K" << std::flush;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  waiter.join();
  if (progress) {
    Expected<jobs::DeviceJobStatistics> s = jm.Statistics(id);
    if (s.ok()) std::cerr << "\r" << id << " " << Bar(*s) << "\x1b[K\n";
  }
}

int Fail(const std::string& message, int code) {
  std::cerr << "twinq job: " << message << "\n";
  return code;
}

// The request body of the schedule-* subcommands.
Expected<Value> BuildRequest(const Options& o, jobs::Clock& clock) {
  std::string start = o.start;
  if (start == "now") {
    start = jobs::FormatTime(clock.Now());
  } else if (!start.empty() && start[0] == '+') {
    double secs = 0;
    if (!ParseNumber(start.substr(1), 0, 1e10, &secs)) {
      return Error{"--start needs an ISO-8601 time, 'now' or +SECONDS, not '" + o.start + "'"};
    }
    start = jobs::FormatTime(clock.Now() + static_cast<int64_t>(secs * jobs::kTicksPerSecond));
  }
  if (o.sub == "schedule") {
    std::string text = o.request;
    if (!text.empty() && text[0] == '@') {
      Expected<std::string> f = ReadFile(text.substr(1));
      if (!f.ok()) return f.error();
      text = *f;
    }
    Expected<Value> v = ParseJson(text, "--request");
    if (!v.ok()) return v.error();
    return *v;
  }
  if (o.id.empty() || o.condition.empty()) return Error{"--id and --condition are required"};
  Object body;
  body.emplace_back("jobId", Value::String(o.id));
  if (o.sub == "schedule-twin-update") {
    if (o.patch.empty()) return Error{"--patch is required"};
    Expected<Value> patch = ParseJson(o.patch, "--patch");
    if (!patch.ok()) return patch.error();
    if (!patch->is_object()) return Error{"--patch must be a JSON object"};
    Object twin = patch->as_object();
    bool has_etag = false;
    for (const auto& m : twin) has_etag = has_etag || m.first == "etag";
    if (!has_etag) twin.emplace_back("etag", Value::String("*"));
    body.emplace_back("type", Value::String("scheduleUpdateTwin"));
    body.emplace_back("updateTwin", Value::MakeObject(std::move(twin)));
  } else {
    if (o.method.empty()) return Error{"--method is required"};
    Object m;
    m.emplace_back("methodName", Value::String(o.method));
    if (!o.payload.empty()) {
      Expected<Value> p = ParseJson(o.payload, "--payload");
      if (!p.ok()) return p.error();
      m.emplace_back("payload", *p);
    }
    if (o.response_timeout != -1) {
      m.emplace_back("responseTimeoutInSeconds", Value::Number(o.response_timeout));
    }
    if (o.connect_timeout != -1) {
      m.emplace_back("connectTimeoutInSeconds", Value::Number(o.connect_timeout));
    }
    body.emplace_back("type", Value::String("scheduleDeviceMethod"));
    body.emplace_back("cloudToDeviceMethod", Value::MakeObject(std::move(m)));
  }
  body.emplace_back("queryCondition", Value::String(o.condition));
  body.emplace_back("startTime", Value::String(start));
  body.emplace_back("maxExecutionTimeInSeconds", Value::Number(static_cast<double>(o.max_time)));
  return Value::MakeObject(std::move(body));
}

}  // namespace

int CmdJob(const Args& args) {
  Options o;
  if (int rc = ParseArgs(args, &o); rc >= 0) return rc;
  static const char* kSubs[] = {"schedule-twin-update",
                                "schedule-method",
                                "schedule",
                                "run",
                                "get",
                                "list",
                                "cancel",
                                "devices"};
  bool known = false;
  for (const char* s : kSubs) known = known || o.sub == s;
  if (!known) return Fail("unknown subcommand '" + o.sub + "'\n" + kUsage, 1);
  bool schedules = o.sub.rfind("schedule", 0) == 0;
  bool needs_fleet = schedules || o.sub == "run";
  if (needs_fleet && o.twins.empty() == o.index.empty()) {
    return Fail(o.sub + " needs one of --twins FILE or --index FILE", 1);
  }
  if (!schedules && o.jobs_file.empty()) {
    return Fail(o.sub + " needs --jobs STATE (the job state written by an earlier run)", 1);
  }
  if ((o.sub == "get" || o.sub == "cancel") && o.positional.size() != 1) {
    return Fail(o.sub + " needs one JOB id", 1);
  }
  if ((o.sub == "devices" && o.positional.size() > 1) ||
      ((o.sub == "list" || needs_fleet) && !o.positional.empty())) {
    return Fail("unexpected argument '" + o.positional.back() + "'", 1);
  }

  // The clock.
  std::unique_ptr<jobs::FakeClock> fake;
  jobs::Clock* clock = &jobs::DefaultClock();
  if (!o.clock.empty()) {
    int64_t t = 0;
    std::string why;
    if (!jobs::ParseTime(o.clock, &t, &why)) return Fail("--clock: " + why, 1);
    fake = std::make_unique<jobs::FakeClock>(t);
    clock = fake.get();
  }

  // The fleet.
  std::unique_ptr<index::Fleet> fleet = std::make_unique<index::Fleet>();
  if (!o.index.empty()) {
    Expected<std::unique_ptr<index::Fleet>> f = OpenIndexFile(o.index);
    if (!f.ok()) return Fail(f.error().message, 1);
    fleet = std::move(f).value();
  } else if (!o.twins.empty()) {
    Expected<size_t> n = fleet->LoadTwinsFile(o.twins);
    if (!n.ok()) return Fail(n.error().message, 1);
  }

  jobs::SimulatedDevices devices(*clock, o.sim);
  jobs::JobManagerOptions jo;
  // On a fake clock devices run one at a time, so that virtual time is deterministic.
  jo.device_concurrency = fake ? 1 : o.concurrency;
  jo.twin_batch_size = o.batch;
  jo.max_active_jobs = o.max_active;
  jo.validation.job_property_charset = o.charset;
  jobs::JobManager jm(*fleet, *clock, &devices, jo);

  bool state_exists = false;
  if (!o.jobs_file.empty()) {
    std::error_code ec;
    state_exists = std::filesystem::exists(o.jobs_file, ec);
    if (state_exists) {
      Expected<std::string> text = ReadFile(o.jobs_file);
      if (!text.ok()) return Fail(text.error().message, 1);
      Expected<Value> state = ParseJson(*text, o.jobs_file);
      if (!state.ok()) return Fail(state.error().message, 1);
      Expected<size_t> n = jm.Import(*state);
      if (!n.ok()) return Fail(o.jobs_file + ": " + n.error().message, 1);
    } else if (!schedules) {
      return Fail(o.jobs_file + ": no such job state file", 1);
    }
  }
  auto save_state = [&]() -> int {
    if (o.jobs_file.empty()) return 0;
    std::string text = ToJson(jm.Export());
    text += '\n';
    Expected<bool> w = WriteFileAtomically(o.jobs_file, text);
    if (!w.ok()) return Fail(w.error().message, 1);
    return 0;
  };
  bool progress = o.progress == -1 ? isatty(2) != 0 : o.progress == 1;

  if (o.sub == "get") {
    Expected<Value> r = jm.Get(o.positional[0]);
    if (!r.ok()) return Fail(r.error().message, 1);
    std::cout << ToJson(*r) << "\n";
    return 0;
  }
  if (o.sub == "cancel") {
    Expected<Value> r = jm.Cancel(o.positional[0]);
    if (!r.ok()) return Fail(r.error().message, 1);
    std::cout << ToJson(*r) << "\n";
    return save_state();
  }
  if (o.sub == "list" || o.sub == "devices") {
    PageRequest page;
    page.page_size = o.page_size;
    page.continuation = o.continuation;
    Expected<QueryResult> r = Error{""};
    if (o.sub == "list") {
      r = jm.List({o.type_filter, o.status_filter}, page);
    } else {
      std::string q = o.positional.empty() ? "SELECT * FROM devices.jobs" : o.positional[0];
      size_t lead = q.find_first_not_of(" \t\r\n");
      if (lead == std::string::npos || !EqualsIgnoreCase(q.substr(lead, 6), "select")) {
        q = "SELECT * FROM devices.jobs WHERE " + q;
      }
      r = jm.QueryDeviceJobs(q, page);
    }
    if (!r.ok())
      return Fail(r.error().message,
                  r.error().message.find("error[E") != std::string::npos ? 2 : 1);
    std::cout << "[\n";
    for (size_t i = 0; i < r->rows.size(); ++i) {
      std::cout << ToJson(r->rows[i]) << (i + 1 < r->rows.size() ? ",\n" : "\n");
    }
    std::cout << "]\n";
    if (!r->continuation.empty()) std::cerr << "continuation: " << r->continuation << "\n";
    return 0;
  }

  // schedule-*, run.
  std::vector<std::string> ran;
  if (schedules) {
    Expected<Value> body = BuildRequest(o, *clock);
    if (!body.ok()) return Fail(body.error().message, 1);
    Expected<Value> r = jm.Schedule(*body);
    if (!r.ok()) return Fail(r.error().message, 2);
    std::string id = r->Find("jobId")->as_string();
    jm.Poll();
    Expected<jobs::JobStatus> st = jm.Status(id);
    if (*st == jobs::JobStatus::kScheduled && o.jobs_file.empty()) {
      return Fail("job '" + id +
                      "' starts later and would be lost when twinq exits: keep it with --jobs "
                      "STATE and run it with 'twinq job run'",
                  1);
    }
    ran.push_back(id);
  } else {
    // The jobs this Poll starts are those waiting before it and no longer waiting after it.
    // (Listing the running jobs after Poll would miss a job that already finished.)
    auto waiting = [&](const std::string& id) {
      jobs::JobStatus st = *jm.Status(id);
      return st == jobs::JobStatus::kQueued || st == jobs::JobStatus::kScheduled;
    };
    std::vector<std::string> before;
    Expected<QueryResult> all = jm.List({});
    for (const Value& j : all->rows) {
      std::string id = j.Find("jobId")->as_string();
      if (waiting(id)) before.push_back(std::move(id));
    }
    jm.Poll();
    for (std::string& id : before) {
      if (!waiting(id)) ran.push_back(std::move(id));
    }
    if (ran.empty()) std::cerr << "twinq job run: no job is due\n";
  }
  int rc = 0;
  for (const std::string& id : ran) {
    WaitWithProgress(jm, id, progress);
    std::cout << ToJson(*jm.Get(id)) << "\n";
    jobs::JobStatus st = *jm.Status(id);
    if (st == jobs::JobStatus::kScheduled) {
      std::cerr << "job " << id << " is scheduled for "
                << jm.Get(id)->Find("startTime")->as_string() << "; 'twinq job run --jobs "
                << o.jobs_file << "' runs it then\n";
    } else {
      Summary(jm, id);
    }
    if (st == jobs::JobStatus::kFailed || st == jobs::JobStatus::kCancelled) rc = 4;
  }
  jm.WaitAll();
  if (!o.out.empty()) {
    Expected<bool> w = WriteFleet(*fleet, o.out);
    if (!w.ok()) return Fail(w.error().message, 1);
  }
  if (int s = save_state(); s != 0) return s;
  return rc;
}

}  // namespace twinq::tools
