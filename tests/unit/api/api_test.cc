// The public API (include/twinq) against the engine it wraps: diagnostics, row sets and ids equal
// to the internal VM's, paging, patch visibility, the condition cache, and the job scheduler.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/source.h"
#include "engine/common/value.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "tools/frontend.h"
#include "twinq/twinq.h"

namespace {

using twinq::Condition;
using twinq::ConditionCache;
using twinq::ErrorCode;
using twinq::Fleet;
using twinq::Query;
using twinq::Snapshot;
using twinq::StatusOr;

const std::string kDemo = std::string(TWINQ_SOURCE_DIR) + "/tests/data/demo.ndjson";

Fleet LoadDemo() {
  StatusOr<Fleet> f = Fleet::FromTwinsFile(kDemo);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? *f : Fleet();
}

// The ids the engine gives by itself (tools frontend + vm::TargetIds), bypassing the API.
std::vector<std::string> InternalIds(const std::string& text, const twinq::index::Snapshot& s) {
  twinq::Source source("<condition>", text);
  auto bound = twinq::tools::CompileCondition(source);
  EXPECT_TRUE(bound.ok()) << text;
  if (!bound.ok()) return {};
  return twinq::vm::TargetIds(*bound, s);
}

std::vector<std::string> ApiIds(const std::string& text, const Snapshot& s) {
  StatusOr<Condition> c = Condition::Compile(text);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return {};
  StatusOr<std::vector<std::string>> ids = c->TargetIds(s);
  EXPECT_TRUE(ids.ok()) << ids.status().ToString();
  return ids.ok() ? *ids : std::vector<std::string>{};
}

// An ISO-8601 UTC time `offset_s` seconds from now.
std::string TimeFromNow(int offset_s) {
  std::time_t t = std::time(nullptr) + offset_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---- diagnostics ----

TEST(ApiDiagnostics, UnknownFunctionHasCodePositionAndCaret) {
  StatusOr<Condition> c = Condition::Compile("STARTWITH(deviceId, 'dev-00')");
  ASSERT_FALSE(c.ok());
  const twinq::Status& s = c.status();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidQuery);
  ASSERT_EQ(s.diagnostics().size(), 1u);
  const twinq::CompileDiagnostic& d = s.diagnostics()[0];
  EXPECT_EQ(d.code, "E200");
  EXPECT_EQ(d.number, 200);
  EXPECT_EQ(d.line, 1u);
  EXPECT_EQ(d.column, 1u);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, 9u);
  EXPECT_EQ(d.message, "unknown function 'STARTWITH'; did you mean 'STARTSWITH'?");
  EXPECT_EQ(d.rendered,
            "error[E200] <condition>:1:1: unknown function 'STARTWITH'; did you mean "
            "'STARTSWITH'?\n"
            " | STARTWITH(deviceId, 'dev-00')\n"
            " | ^~~~~~~~~\n");
  EXPECT_EQ(s.message(), "E200 1:1: unknown function 'STARTWITH'; did you mean 'STARTSWITH'?");
  EXPECT_EQ(s.ToString(), d.rendered.substr(0, d.rendered.size() - 1));
}

TEST(ApiDiagnostics, PositionOnALaterLine) {
  StatusOr<Condition> c = Condition::Compile("tags.floor = 3 AND\n  FOO(tags.x)");
  ASSERT_FALSE(c.ok());
  ASSERT_FALSE(c.status().diagnostics().empty());
  const twinq::CompileDiagnostic& d = c.status().diagnostics()[0];
  EXPECT_EQ(d.code, "E200");
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.column, 3u);
  EXPECT_EQ(d.end_line, 2u);
  EXPECT_EQ(d.end_column, 6u);
  EXPECT_NE(d.rendered.find("<condition>:2:3:"), std::string::npos) << d.rendered;
}

TEST(ApiDiagnostics, SyntaxErrorsSelectAsConditionAndEmptyText) {
  StatusOr<Condition> syntax = Condition::Compile("tags.floor = = 3");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().diagnostics().at(0).number / 100, 1);  // a 1xx syntax code

  StatusOr<Condition> select = Condition::Compile("SELECT * FROM devices");
  ASSERT_FALSE(select.ok());
  EXPECT_EQ(select.status().diagnostics().at(0).code, "E114");

  StatusOr<Condition> empty = Condition::Compile("   ");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().diagnostics().at(0).code, "E115");

  StatusOr<Query> q = Query::Compile("SELECT COUNT() FROM devices WHERE STARTWITH(deviceId, 'a')");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().diagnostics().at(0).code, "E200");
  EXPECT_EQ(q.status().diagnostics().at(0).column, 35u);
}

TEST(ApiDiagnostics, StrictDialect) {
  EXPECT_TRUE(Condition::Compile("ARRAY_CONTAINS(tags.roles, 'gateway')").ok());
  twinq::CompileOptions strict;
  strict.strict = true;
  StatusOr<Condition> c = Condition::Compile("ARRAY_CONTAINS(tags.roles, 'gateway')", strict);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().diagnostics().at(0).code, "E202");
}

// ---- row sets and ids ----

TEST(ApiConditions, IdsEqualTheInternalEngineOnTheDemoFleet) {
  Fleet fleet = LoadDemo();
  twinq::index::Fleet internal;
  ASSERT_TRUE(internal.LoadTwinsFile(kDemo).ok());
  for (const std::string text :
       {"tags.building = '43' AND tags.floor >= 2", "*", "NOT (tags.floor = 1)",
        "deviceId IN ['dev-001', 'dev-003', 'nope']", "STARTSWITH(deviceId, 'dev-00')",
        "ARRAY_CONTAINS(tags.roles, 'gateway') OR tags.location.region = 'EU'",
        "properties.reported.batteryLevel > 20 AND properties.reported.batteryLevel <= 60",
        "LOWER(tags.location.region) = 'us'", "FROM devices.modules WHERE moduleId = '$edgeAgent'",
        "FROM devices.modules WHERE true", "tags.nothere = 1"}) {
    std::vector<std::string> want = InternalIds(text, internal.snapshot());
    EXPECT_EQ(ApiIds(text, fleet.snapshot()), want) << text;
  }
  // Not trivially empty or full.
  EXPECT_EQ(ApiIds("tags.building = '43' AND tags.floor >= 2", fleet.snapshot()),
            (std::vector<std::string>{"dev-003", "dev-006"}));
}

TEST(ApiConditions, IdsEqualTheInternalEngineOnAGeneratedFleet) {
  twinq::index::FleetSpec spec;
  spec.devices = 3000;
  spec.seed = 11;
  std::string text = twinq::index::GenerateFleetNdjson(spec);
  StatusOr<Fleet> fleet = Fleet::FromTwinsText(text, "gen");
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  twinq::index::Fleet internal;
  ASSERT_TRUE(internal.LoadTwinsText(text, "gen").ok());
  Snapshot snap = fleet->snapshot();
  EXPECT_EQ(snap.device_count(), 3000u);
  EXPECT_GT(snap.module_count(), 0u);
  size_t nonempty = 0;
  for (const std::string cond :
       {"tags.building = '3'", "tags.floor >= 5 AND tags.floor < 9",
        "tags.environment IN ['prod', 'staging']",
        "STARTSWITH(properties.reported.firmwareVersion, '2.')",
        "IS_DEFINED(tags.owner) AND NOT tags.environment = 'prod'",
        "properties.reported.batteryLevel < 10 OR tags.deviceType = 'meter'",
        "tags.location.geo.lat * 2 > 60", "ENDSWITH(deviceId, '7')",
        "FROM devices.modules WHERE properties.reported.status = 'failed'"}) {
    std::vector<std::string> want = InternalIds(cond, internal.snapshot());
    if (!want.empty()) ++nonempty;
    std::vector<std::string> got = ApiIds(cond, snap);
    EXPECT_EQ(got, want) << cond;
    // The RowSet agrees with its ids and iterates the same order.
    StatusOr<twinq::RowSet> rows = Condition::Compile(cond)->Evaluate(snap);
    ASSERT_TRUE(rows.ok());
    EXPECT_EQ(rows->size(), want.size());
    EXPECT_EQ(rows->snapshot_version(), snap.version());
    std::vector<std::string> visited;
    EXPECT_TRUE(rows->ForEach([&](std::string_view d, std::string_view m) {
                      visited.push_back(m.empty() ? std::string(d)
                                                  : std::string(d) + "/" + std::string(m));
                    })
                    .ok());
    EXPECT_EQ(visited, want) << cond;
  }
  EXPECT_GE(nonempty, 7u);
}

TEST(ApiConditions, ForEachStopsWhenTheCallbackReturnsFalse) {
  Fleet fleet = LoadDemo();
  StatusOr<twinq::RowSet> rows = Condition::Compile("*")->Evaluate(fleet.snapshot());
  ASSERT_TRUE(rows.ok());
  ASSERT_GT(rows->size(), 3u);
  int seen = 0;
  EXPECT_TRUE(rows->ForEach([&](std::string_view, std::string_view) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);
}

TEST(ApiConditions, ExplainPlanAndBoundText) {
  Fleet fleet = LoadDemo();
  StatusOr<Condition> c = Condition::Compile("tags.building = '43' AND tags.floor >= 2");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->collection(), twinq::Collection::kDevices);
  EXPECT_FALSE(c->selects_all());
  StatusOr<std::string> explain = c->Explain(fleet.snapshot());
  ASSERT_TRUE(explain.ok());
  EXPECT_NE(explain->find("tags.building"), std::string::npos) << *explain;
  StatusOr<std::string> plan = c->Plan(fleet.snapshot());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->rfind("12 twins in devices\n", 0), 0u) << *plan;
  EXPECT_NE(c->BoundText().find("tags.building"), std::string::npos);
  StatusOr<Condition> m = Condition::Compile("FROM devices.modules WHERE true");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->collection(), twinq::Collection::kModules);
  EXPECT_EQ(m->Evaluate(fleet.snapshot())->collection(), twinq::Collection::kModules);
  StatusOr<Condition> all = Condition::Compile("*");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->selects_all());
  EXPECT_EQ(all->Evaluate(fleet.snapshot())->size(), 12u);
}

// ---- queries and paging ----

TEST(ApiQuery, PagesConcatenateToTheWholeResult) {
  Fleet fleet = LoadDemo();
  Snapshot snap = fleet.snapshot();
  StatusOr<Query> q = Query::Compile("SELECT deviceId, tags.floor AS floor FROM devices");
  ASSERT_TRUE(q.ok());
  StatusOr<twinq::QueryPage> all = q->Run(snap);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->continuation.empty());
  ASSERT_EQ(all->rows.size(), 12u);
  EXPECT_EQ(all->rows[0], R"({"deviceId":"dev-001","floor":1})");
  std::vector<std::string> paged;
  twinq::PageOptions page;
  page.page_size = 5;
  int pages = 0;
  do {
    StatusOr<twinq::QueryPage> p = q->Run(snap, page);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_LE(p->rows.size(), 5u);
    paged.insert(paged.end(), p->rows.begin(), p->rows.end());
    page.continuation = p->continuation;
    ++pages;
  } while (!page.continuation.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, all->rows);
}

TEST(ApiQuery, ForeignOrBrokenContinuationIsRefused) {
  Fleet fleet = LoadDemo();
  StatusOr<Query> a = Query::Compile("SELECT deviceId FROM devices");
  StatusOr<Query> b = Query::Compile("SELECT deviceId FROM devices WHERE tags.floor = 1");
  ASSERT_TRUE(a.ok() && b.ok());
  twinq::PageOptions page;
  page.page_size = 2;
  StatusOr<twinq::QueryPage> first = a->Run(fleet.snapshot(), page);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->continuation.empty());
  page.continuation = first->continuation;
  StatusOr<twinq::QueryPage> foreign = b->Run(fleet.snapshot(), page);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.status().code(), ErrorCode::kInvalidArgument);
  page.continuation = "garbage";
  EXPECT_EQ(a->Run(fleet.snapshot(), page).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ApiQuery, GroupByMatchesTheInternalEngine) {
  Fleet fleet = LoadDemo();
  const std::string text =
      "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices "
      "GROUP BY properties.reported.telemetryConfig.status";
  StatusOr<twinq::QueryPage> page = Query::Compile(text)->Run(fleet.snapshot());
  ASSERT_TRUE(page.ok());
  twinq::index::Fleet internal;
  ASSERT_TRUE(internal.LoadTwinsFile(kDemo).ok());
  twinq::Source source("<query>", text);
  auto bound = twinq::tools::CompileQuery(source);
  ASSERT_TRUE(bound.ok());
  auto want = twinq::vm::RunQuery(*bound, internal.snapshot());
  ASSERT_TRUE(want.ok());
  std::vector<std::string> want_rows;
  for (const twinq::Value& v : want->rows) want_rows.push_back(twinq::ToJson(v));
  EXPECT_EQ(page->rows, want_rows);
  EXPECT_EQ(page->rows.size(), 3u);
}

// ---- mutations ----

TEST(ApiFleet, PatchIsVisibleInTheNextSnapshotOnly) {
  Fleet fleet = LoadDemo();
  StatusOr<Condition> canary = Condition::Compile("tags.ring = 'canary'");
  ASSERT_TRUE(canary.ok());
  Snapshot before = fleet.snapshot();
  EXPECT_EQ(canary->Evaluate(before)->size(), 0u);
  StatusOr<uint64_t> v = fleet.Patch("dev-002", "", R"({"tags":{"ring":"canary"}})");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  Snapshot after = fleet.snapshot();
  EXPECT_EQ(after.version(), *v);
  EXPECT_GT(after.version(), before.version());
  EXPECT_EQ(*canary->TargetIds(after), std::vector<std::string>{"dev-002"});
  EXPECT_EQ(canary->Evaluate(before)->size(), 0u);  // the old snapshot is unchanged
  StatusOr<std::string> doc = after.TwinJson("dev-002");
  ASSERT_TRUE(doc.ok());
  EXPECT_NE(doc->find(R"("ring":"canary")"), std::string::npos);

  // A batch is atomic: the failing second change leaves the first unapplied.
  StatusOr<uint64_t> bad = fleet.Apply(
      {twinq::TwinChange::Patch("dev-001", "", R"({"tags":{"ring":"canary"}})"),
       twinq::TwinChange::Patch("no-such-device", "", R"({"tags":{"ring":"canary"}})")});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kNotFound) << bad.status().ToString();
  EXPECT_EQ(canary->Evaluate(fleet.snapshot())->size(), 1u);

  StatusOr<uint64_t> etag = fleet.Patch("dev-001", "", R"({"tags":{"x":1}})", "\"nope\"");
  EXPECT_EQ(etag.status().code(), ErrorCode::kFailedPrecondition) << etag.status().ToString();
  StatusOr<uint64_t> json = fleet.Patch("dev-001", "", R"({"tags":)");
  EXPECT_EQ(json.status().code(), ErrorCode::kInvalidArgument);

  ASSERT_TRUE(fleet.Upsert(R"({"deviceId":"new-1","tags":{"ring":"canary"}})").ok());
  EXPECT_EQ(*canary->TargetIds(fleet.snapshot()), (std::vector<std::string>{"dev-002", "new-1"}));
  ASSERT_TRUE(fleet.Delete("dev-002").ok());
  EXPECT_EQ(*canary->TargetIds(fleet.snapshot()), std::vector<std::string>{"new-1"});
  EXPECT_EQ(fleet.snapshot().TwinJson("dev-002").status().code(), ErrorCode::kNotFound);
}

TEST(ApiFleet, LoadErrorsAndIndexRoundTrip) {
  StatusOr<Fleet> missing = Fleet::FromTwinsFile("/nonexistent/twins.ndjson");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kIoError);
  StatusOr<Fleet> malformed = Fleet::FromTwinsText("{\"deviceId\": \"a\"}\n{oops}", "bad.ndjson");
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(malformed.status().message().find("bad.ndjson:2:"), std::string::npos)
      << malformed.status().message();

  Fleet fleet = LoadDemo();
  std::string path = ::testing::TempDir() + "/api_test_fleet.twinq";
  StatusOr<size_t> saved = fleet.SaveIndex(path);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_GT(*saved, 0u);
  StatusOr<Fleet> opened = Fleet::OpenIndex(path);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(ApiIds("tags.building = '43'", opened->snapshot()),
            ApiIds("tags.building = '43'", fleet.snapshot()));
  StatusOr<Fleet> notindex = Fleet::OpenIndex(kDemo);
  EXPECT_EQ(notindex.status().code(), ErrorCode::kIoError);
  std::remove(path.c_str());
}

TEST(ApiFleet, DefaultObjectsAreUsable) {
  Snapshot empty;
  EXPECT_EQ(empty.device_count(), 0u);
  twinq::RowSet rows;
  EXPECT_TRUE(rows.empty());
  EXPECT_TRUE(rows.Ids()->empty());
  EXPECT_TRUE(Condition::Compile("tags.a = 1")->TargetIds(empty)->empty());
  Fleet f;
  EXPECT_EQ(f.snapshot().device_count(), 0u);
}

// ---- cache ----

TEST(ApiCache, HitsMissesAndLru) {
  ConditionCache cache(2);
  StatusOr<Condition> a1 = cache.Get("tags.floor = 1");
  StatusOr<Condition> a2 = cache.Get("tags.floor = 1");
  ASSERT_TRUE(a1.ok() && a2.ok());
  ConditionCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.size, 1u);
  // The strict dialect is another entry.
  twinq::CompileOptions strict;
  strict.strict = true;
  ASSERT_TRUE(cache.Get("tags.floor = 1", strict).ok());
  EXPECT_EQ(cache.stats().misses, 2u);
  // Least recently used evicted: touch the default entry, add a third.
  ASSERT_TRUE(cache.Get("tags.floor = 1").ok());
  ASSERT_TRUE(cache.Get("tags.floor = 2").ok());
  s = cache.stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.size, 2u);
  EXPECT_EQ(s.hits, 2u);
  ASSERT_TRUE(cache.Get("tags.floor = 1").ok());  // still cached
  EXPECT_EQ(cache.stats().hits, 3u);
  ASSERT_TRUE(cache.Get("tags.floor = 1", strict).ok());  // was evicted
  EXPECT_EQ(cache.stats().misses, 4u);
  // Errors are not cached and come back each time with their diagnostics.
  for (int i = 0; i < 2; ++i) {
    StatusOr<Condition> bad = cache.Get("FOO(1)");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().diagnostics().at(0).code, "E200");
  }
  EXPECT_EQ(cache.stats().misses, 6u);
  cache.Clear();
  EXPECT_EQ(cache.stats().size, 0u);
}

TEST(ApiCache, CachedConditionGivesTheSameRows) {
  Fleet fleet = LoadDemo();
  ConditionCache cache;
  std::vector<std::string> first = *cache.Get("tags.floor >= 2")->TargetIds(fleet.snapshot());
  std::vector<std::string> again = *cache.Get("tags.floor >= 2")->TargetIds(fleet.snapshot());
  EXPECT_EQ(first, again);
  EXPECT_EQ(first, ApiIds("tags.floor >= 2", fleet.snapshot()));
  EXPECT_EQ(cache.stats().hits, 1u);
}

// A compiled program outlives big changes of the fleet: rebuilt when the table size moves.
TEST(ApiConditions, ProgramFollowsTheFleetAcrossLoads) {
  Fleet fleet = LoadDemo();
  StatusOr<Condition> c = Condition::Compile("tags.building = '43'");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Evaluate(fleet.snapshot())->size(), 4u);
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += R"({"deviceId":"d)" + std::to_string(1000 + i) + R"(","tags":{"building":")" +
            (i % 2 ? "43" : "44") + "\"}}\n";
  }
  ASSERT_TRUE(fleet.LoadTwinsText(text).ok());
  EXPECT_EQ(c->Evaluate(fleet.snapshot())->size(), 100u);
}

// ---- concurrency (run under ThreadSanitizer by scripts/tsan.sh) ----

TEST(ApiStress, ReadersWithCacheWhileAWriterPatches) {
  constexpr int kDevices = 200;
  std::string text;
  for (int i = 0; i < kDevices; ++i) {
    text += R"({"deviceId":"d)" + std::to_string(1000 + i) + R"(","tags":{"ring":"a"}})" + "\n";
  }
  StatusOr<Fleet> fleet = Fleet::FromTwinsText(text);
  ASSERT_TRUE(fleet.ok());
  ConditionCache cache(4);
  StatusOr<Condition> shared = Condition::Compile("tags.ring = 'b'");
  ASSERT_TRUE(shared.ok());
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> evaluations{0};
  auto reader = [&] {
    uint64_t last_b = 0;
    while (!done.load()) {
      Snapshot s = fleet->snapshot();
      StatusOr<Condition> a = cache.Get("tags.ring = 'a'");
      StatusOr<Condition> b = cache.Get("tags.ring = 'b'");
      if (!a.ok() || !b.ok()) {
        ++failures;
        continue;
      }
      StatusOr<twinq::RowSet> ra = a->Evaluate(s);
      StatusOr<twinq::RowSet> rb = b->Evaluate(s);
      StatusOr<twinq::RowSet> rs = shared->Evaluate(s);
      if (!ra.ok() || !rb.ok() || !rs.ok()) {
        ++failures;
        continue;
      }
      // Every snapshot is a whole batch: a + b is the fleet, b only grows.
      if (ra->size() + rb->size() != kDevices || rs->size() != rb->size() || rb->size() < last_b)
        ++failures;
      last_b = rb->size();
      ++evaluations;
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back(reader);
  for (int i = 0; i < kDevices; i += 4) {  // moves 4 devices to ring b per batch
    std::vector<twinq::TwinChange> batch;
    for (int j = i; j < i + 4; ++j) {
      batch.push_back(
          twinq::TwinChange::Patch("d" + std::to_string(1000 + j), "", R"({"tags":{"ring":"b"}})"));
    }
    StatusOr<uint64_t> v = fleet->Apply(batch);
    if (!v.ok()) ++failures;
  }
  // Let the readers see the final version too.
  while (evaluations.load() < 30) std::this_thread::yield();
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(shared->Evaluate(fleet->snapshot())->size(), static_cast<size_t>(kDevices));
  ConditionCache::Stats s = cache.stats();
  EXPECT_EQ(s.size, 2u);
  EXPECT_GE(s.hits + s.misses, 2 * evaluations.load());
}

// ---- jobs ----

std::string TwinJob(const std::string& id, const std::string& condition, const std::string& tags) {
  return R"({"jobId":")" + id +
         R"(","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":)" + tags +
         R"(},"queryCondition":")" + condition + R"(","startTime":")" + TimeFromNow(-1) +
         R"(","maxExecutionTimeInSeconds":3600})";
}

TEST(ApiJobs, TwinUpdateJobThroughTheApi) {
  Fleet fleet = LoadDemo();
  twinq::JobSchedulerOptions options;
  options.background = false;
  auto scheduler = twinq::JobScheduler::Create(fleet, options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
  twinq::JobScheduler& jobs = **scheduler;

  StatusOr<twinq::JobInfo> queued =
      jobs.Schedule(TwinJob("ring1", "tags.building = '43'", R"({"ring":"canary"})"));
  ASSERT_TRUE(queued.ok()) << queued.status().ToString();
  EXPECT_EQ(queued->job_id, "ring1");
  EXPECT_EQ(queued->type, "scheduleUpdateTwin");
  EXPECT_EQ(queued->status, twinq::JobStatus::kQueued);
  EXPECT_EQ(jobs.Poll(), 1u);
  jobs.Wait("ring1");
  StatusOr<twinq::JobInfo> done = jobs.Get("ring1");
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, twinq::JobStatus::kCompleted) << done->json;
  EXPECT_TRUE(twinq::IsTerminal(done->status));
  EXPECT_EQ(done->statistics.device_count, 4);
  EXPECT_EQ(done->statistics.succeeded_count, 4);
  StatusOr<twinq::JobStatistics> st = jobs.Statistics("ring1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->succeeded_count, 4);
  EXPECT_EQ(st->pending_count + st->running_count + st->failed_count, 0);
  // The patch is visible to the next query.
  EXPECT_EQ(ApiIds("tags.ring = 'canary'", fleet.snapshot()),
            ApiIds("tags.building = '43'", fleet.snapshot()));
  StatusOr<twinq::QueryPage> records =
      jobs.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE status = 'completed'");
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(records->rows.size(), 4u);

  // Errors.
  EXPECT_EQ(jobs.Get("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(jobs.Statistics("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(jobs.Cancel("ring1").status().code(), ErrorCode::kFailedPrecondition);
  StatusOr<twinq::JobInfo> dup =
      jobs.Schedule(TwinJob("ring1", "tags.building = '43'", R"({"ring":"x"})"));
  EXPECT_EQ(dup.status().code(), ErrorCode::kAlreadyExists) << dup.status().ToString();
  StatusOr<twinq::JobInfo> bad =
      jobs.Schedule(TwinJob("ring2", "STARTWITH(deviceId, 'a')", R"({"ring":"x"})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  ASSERT_EQ(bad.status().diagnostics().size(), 1u) << bad.status().ToString();
  EXPECT_EQ(bad.status().diagnostics()[0].code, "E200");
  EXPECT_EQ(bad.status().diagnostics()[0].column, 1u);
  EXPECT_EQ(jobs.Schedule("{not json").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(jobs.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE FOO(1)").status().code(),
            ErrorCode::kInvalidQuery);

  StatusOr<twinq::JobPage> list = jobs.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs.size(), 1u);
  EXPECT_EQ(list->jobs[0].job_id, "ring1");
  twinq::JobFilter running;
  running.status = "running";
  EXPECT_TRUE(jobs.List(running)->jobs.empty());
}

TEST(ApiJobs, MethodJobCallsTheHandlerAndCancel) {
  Fleet fleet = LoadDemo();
  std::atomic<int> calls{0};
  twinq::JobSchedulerOptions options;
  options.device_concurrency = 2;
  auto scheduler = twinq::JobScheduler::Create(fleet, options, [&](const twinq::MethodCall& call) {
    ++calls;
    twinq::MethodResponse r;
    if (call.device_id == "dev-001") {
      r.responded = false;
      r.error_code = 404103;
      r.error_name = "DeviceNotOnline";
      r.error_message = "offline";
    } else {
      r.payload_json = R"({"ok":true,"echo":)" + call.payload_json + "}";
    }
    return r;
  });
  ASSERT_TRUE(scheduler.ok());
  twinq::JobScheduler& jobs = **scheduler;
  std::string body = R"({"jobId":"m1","type":"scheduleDeviceMethod","cloudToDeviceMethod":)"
                     R"({"methodName":"reboot","payload":{"delay":1}},)"
                     R"("queryCondition":"tags.location.region = 'US'","startTime":")" +
                     TimeFromNow(-1) + R"(","maxExecutionTimeInSeconds":3600})";
  ASSERT_TRUE(jobs.Schedule(body).ok());
  // The background thread starts it; poll the statistics as a scheduler would.
  twinq::JobStatistics st;
  for (int i = 0; i < 1000; ++i) {
    StatusOr<twinq::JobInfo> info = jobs.Get("m1");
    ASSERT_TRUE(info.ok());
    st = info->statistics;
    if (twinq::IsTerminal(info->status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  size_t us = ApiIds("tags.location.region = 'US'", fleet.snapshot()).size();
  ASSERT_GT(us, 1u);
  EXPECT_EQ(st.device_count, static_cast<int64_t>(us));
  EXPECT_EQ(st.failed_count, 1);  // dev-001 is offline
  EXPECT_EQ(st.succeeded_count, static_cast<int64_t>(us) - 1);
  EXPECT_EQ(calls.load(), static_cast<int>(us));

  // A job starting in an hour can be cancelled.
  std::string later = R"({"jobId":"m2","type":"scheduleDeviceMethod","cloudToDeviceMethod":)"
                      R"({"methodName":"reboot"},"queryCondition":"*","startTime":")" +
                      TimeFromNow(3600) + R"(","maxExecutionTimeInSeconds":60})";
  ASSERT_TRUE(jobs.Schedule(later).ok());
  StatusOr<twinq::JobInfo> cancelled = jobs.Cancel("m2");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ(cancelled->status, twinq::JobStatus::kCancelled);
  EXPECT_EQ(twinq::JobStatusName(cancelled->status), "cancelled");
}

TEST(ApiJobs, BadOptionsAreRefused) {
  twinq::JobSchedulerOptions options;
  options.device_concurrency = 0;
  auto s = twinq::JobScheduler::Create(Fleet(), options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
}

TEST(ApiStatus, CodesAndBadAccess) {
  EXPECT_EQ(twinq::ErrorCodeName(ErrorCode::kNotFound), "not_found");
  twinq::Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.ToString(), "ok");
  twinq::Status nf(ErrorCode::kNotFound, "no twin x");
  EXPECT_EQ(nf.ToString(), "not_found: no twin x");
  StatusOr<int> from_ok{twinq::Status()};  // an ok Status is not a value
  EXPECT_FALSE(from_ok.ok());
  EXPECT_EQ(from_ok.status().code(), ErrorCode::kInternal);
  EXPECT_EQ(from_ok.value_or(7), 7);
  EXPECT_DEATH((void)from_ok.value(), "value\\(\\) of a StatusOr holding an error");
  EXPECT_STREQ(twinq::Version(), "0.1.0");
}

}  // namespace
