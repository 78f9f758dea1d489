// The JobManager (jobs/job_manager.h) on a fake clock: lifecycle, cancel, throttling, deadline,
// statistics, twin updates through the fleet, method outcomes, devices.jobs queries and paging.
#include "jobs/job_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "engine/common/json_reader.h"
#include "jobs/simulated_devices.h"
#include "tests/unit/jobs/job_test_util.h"

namespace twinq::jobs {
namespace {

using testing::At;
using testing::LoadFleet;
using testing::T0;
using testing::Targets;

std::string TwinJob(const std::string& id, const std::string& cond, const std::string& tags,
                    int64_t start_s = 0, int64_t max_s = 3600) {
  return R"({"jobId":")" + id +
         R"(","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":)" + tags +
         R"(},"queryCondition":")" + cond + R"(","startTime":")" + At(start_s) +
         R"(","maxExecutionTimeInSeconds":)" + std::to_string(max_s) + "}";
}

std::string MethodJob(const std::string& id, const std::string& cond, int64_t start_s = 0,
                      int64_t max_s = 3600, const std::string& extra = "") {
  return R"({"jobId":")" + id +
         R"(","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1})" +
         extra + R"(},"queryCondition":")" + cond + R"(","startTime":")" + At(start_s) +
         R"(","maxExecutionTimeInSeconds":)" + std::to_string(max_s) + "}";
}

std::string Str(const Value& v, std::string_view key) {
  const Value* m = v.Find(key);
  return m != nullptr && m->is_string() ? m->as_string() : "<" + std::string(key) + " absent>";
}

// An invoker that runs a hook on each call, then answers like a simulated device.
class HookInvoker : public MethodInvoker {
 public:
  HookInvoker(Clock& clock, std::function<void(const MethodCall&)> hook)
      : devices_(clock), hook_(std::move(hook)) {}
  MethodResult Invoke(const MethodCall& call) override {
    hook_(call);
    return devices_.Invoke(call);
  }
  SimulatedDevices devices_;

 private:
  std::function<void(const MethodCall&)> hook_;
};

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { LoadFleet(&fleet_); }
  JobManagerOptions Options(size_t concurrency = 1) {
    JobManagerOptions o;
    o.device_concurrency = concurrency;
    o.twin_batch_size = 3;
    return o;
  }
  index::Fleet fleet_;
  FakeClock clock_{T0()};
};

TEST_F(JobManagerTest, LifecycleQueuedScheduledRunningCompleted) {
  SimulatedDevices devices(clock_);
  JobManager jm(fleet_, clock_, &devices, Options());
  Expected<Value> r = jm.ScheduleText(MethodJob("j1", "tags.building = '43'", 60));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(ToJson(*r), R"({"jobId":"j1","type":"scheduleDeviceMethod","status":"queued"})");
  EXPECT_EQ(*jm.Status("j1"), JobStatus::kQueued);
  EXPECT_EQ(jm.Poll(), 0u);  // start is a minute away
  EXPECT_EQ(*jm.Status("j1"), JobStatus::kScheduled);
  Value got = *jm.Get("j1");
  EXPECT_EQ(Str(got, "status"), "scheduled");
  EXPECT_EQ(Str(got, "startTime"), At(60));
  EXPECT_EQ(Str(got, "createdTime"), At(0));
  EXPECT_EQ(got.Find("endTime"), nullptr);
  clock_.Advance(60 * kTicksPerSecond);
  EXPECT_EQ(jm.Poll(), 1u);
  jm.Wait("j1");
  got = *jm.Get("j1");
  EXPECT_EQ(Str(got, "status"), "completed");
  EXPECT_EQ(ToJson(*got.Find("deviceJobStatistics")),
            R"({"deviceCount":5,"failedCount":0,"succeededCount":5,"runningCount":0,)"
            R"("pendingCount":0})");
  EXPECT_EQ(Str(got, "endTime"), At(60));
  EXPECT_EQ(ToJson(*got.Find("cloudToDeviceMethod")),
            R"({"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":30,)"
            R"("connectTimeoutInSeconds":0})");
  EXPECT_EQ(devices.calls(), 5u);
  EXPECT_FALSE(jm.Get("nope").ok());
  EXPECT_EQ(jm.Get("nope").error().message, "JobNotFound: no job with id 'nope'");
}

TEST_F(JobManagerTest, DuplicateJobIdIsRefused) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("j1", "*", R"({"a":"b"})")).ok());
  Expected<Value> again = jm.ScheduleText(TwinJob("j1", "*", R"({"a":"c"})"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, "JobAlreadyExists: a job with id 'j1' already exists");
  jm.Poll();
  jm.WaitAll();
  // Still refused once the first one has finished (history is kept).
  EXPECT_FALSE(jm.ScheduleText(TwinJob("j1", "*", R"({"a":"c"})")).ok());
  // Validation errors come through Schedule too.
  Expected<Value> bad = jm.ScheduleText(TwinJob("j2", "tags.x = ", R"({"a":"c"})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("<queryCondition>:1:"), std::string::npos);
}

TEST_F(JobManagerTest, TwinUpdateIsVisibleToLaterQueriesAndJobs) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  uint64_t v0 = fleet_.snapshot().version();
  ASSERT_TRUE(jm.ScheduleText(TwinJob("t1", "tags.building = '43'", R"({"fw":"2.0"})")).ok());
  EXPECT_TRUE(Targets(fleet_, "tags.fw = '2.0'").empty());
  jm.Poll();
  jm.Wait("t1");
  EXPECT_EQ(Str(*jm.Get("t1"), "status"), "completed");
  EXPECT_EQ(Targets(fleet_, "tags.fw = '2.0'"),
            (std::vector<std::string>{"dev-00", "dev-02", "dev-04", "dev-06", "dev-08"}));
  // Five devices, batches of 3: two Fleet::Apply calls, two new versions.
  EXPECT_EQ(fleet_.snapshot().version(), v0 + 2);
  // Version, etag and $metadata were bumped by the index's patch path.
  const index::Table& devs = fleet_.snapshot().devices();
  Value doc = devs.Document(*devs.FindRow("dev-00"));
  EXPECT_EQ(ToJson(*doc.Find("version")), "2");
  EXPECT_EQ(Str(doc, "etag"), "AAAAAAAAAAI=");
  // A later job targets by the updated tag.
  ASSERT_TRUE(
      jm.ScheduleText(TwinJob("t2", "tags.fw = '2.0' AND tags.floor >= 4", R"({"fw":"2.1"})"))
          .ok());
  jm.Poll();
  jm.Wait("t2");
  EXPECT_EQ(ToJson(*jm.Get("t2")->Find("deviceJobStatistics")->Find("deviceCount")), "3");
  EXPECT_EQ(Targets(fleet_, "tags.fw = '2.1'"),
            (std::vector<std::string>{"dev-04", "dev-06", "dev-08"}));
  // Desired properties: $version bumps.
  std::string desired =
      R"({"jobId":"t3","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"telemetry":{"freq":"5m"}}}},"queryCondition":"deviceId = 'dev-01'","startTime":")" +
      At(0) + R"(","maxExecutionTimeInSeconds":60})";
  ASSERT_TRUE(jm.ScheduleText(desired).ok());
  jm.Poll();
  jm.Wait("t3");
  EXPECT_EQ(Targets(fleet_,
                    "properties.desired.telemetry.freq = '5m' AND "
                    "properties.desired.$version = 2"),
            (std::vector<std::string>{"dev-01"}));
}

// Batches after the first are prepared while the batch before them is applied (the pipeline of
// docs/jobs.md): with two apply threads, every patch of batches 2 to 4 (ten devices in batches
// of three) is applied from its prepared splice; with one, nothing is prepared. The documents
// are the same either way.
TEST_F(JobManagerTest, TwinJobPreparesTheNextBatchWhileApplyingOne) {
  std::vector<std::string> docs[2];
  for (unsigned threads : {1u, 2u}) {
    SCOPED_TRACE(threads);
    index::Fleet fleet;
    LoadFleet(&fleet);
    JobManagerOptions o = Options();
    o.twin_apply_threads = threads;
    JobManager jm(fleet, clock_, nullptr, o);
    ASSERT_TRUE(jm.ScheduleText(TwinJob("t", "*", R"({"fw":"3.0"})")).ok());
    jm.Poll();
    jm.Wait("t");
    EXPECT_EQ(Str(*jm.Get("t"), "status"), "completed");
    EXPECT_EQ(fleet.prepared_patches_taken(), threads == 1 ? 0u : 7u);
    EXPECT_EQ(Targets(fleet, "tags.fw = '3.0' AND version = 2").size(), 10u);
    const index::Table& devs = fleet.snapshot().devices();
    for (uint32_t row : devs.order()) docs[threads - 1].emplace_back(devs.doc_json(row));
  }
  EXPECT_EQ(docs[0], docs[1]);
}

// Two twin jobs over the same devices and a writer patching them directly, all at once: a
// prepared splice whose twin changed meanwhile is computed again, so no update is lost (each
// twin ends with every tag and its version counts every write).
TEST_F(JobManagerTest, TwinJobsAndAWriterOnTheSameTwinsLoseNoUpdate) {
  JobManagerOptions o = Options();
  o.twin_batch_size = 2;
  JobManager jm(fleet_, clock_, nullptr, o);
  ASSERT_TRUE(jm.ScheduleText(TwinJob("a", "*", R"({"a":"1"})")).ok());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("b", "*", R"({"b":"1"})")).ok());
  std::thread writer([&] {
    for (int round = 0; round < 20; ++round) {
      Value patch = *ParseJson(R"({"tags":{"w":)" + std::to_string(round) + "}}", "patch");
      for (int i = 0; i < 10; ++i) {
        char id[16];
        std::snprintf(id, sizeof id, "dev-%02d", i);
        ASSERT_TRUE(fleet_.Patch(id, "", patch, "*", index::NowTimestamp()).ok());
      }
    }
  });
  jm.Poll();
  jm.WaitAll();
  writer.join();
  EXPECT_EQ(Str(*jm.Get("a"), "status"), "completed");
  EXPECT_EQ(Str(*jm.Get("b"), "status"), "completed");
  EXPECT_EQ(
      Targets(fleet_, "tags.a = '1' AND tags.b = '1' AND tags.w = 19 AND version = 23").size(),
      10u);
}

// A patch that fails for one twin fails that device alone: dev-02's tags are already close to
// the 8 KB limit (A.9), so the job's patch would take them over it after merging. Its batch
// (dev-00, dev-02, dev-04 in batches of 3) is refused, each patch is checked on its own, and
// the rest of the batch is applied in a second round; the next batch is not affected.
TEST_F(JobManagerTest, TwinJobFailsOnlyTheDevicesWhosePatchFails) {
  // Two strings of 3,900 bytes (a string may hold 4,096): about 7.9 KB of tags.
  const std::string x(3900, 'x');
  Expected<Value> big = ParseJson(R"({"tags":{"big1":")" + x + R"(","big2":")" + x + R"("}})", "p");
  ASSERT_TRUE(big.ok());
  ASSERT_TRUE(fleet_.Patch("dev-02", "", *big, "*", index::NowTimestamp()).ok());
  JobManager jm(fleet_, clock_, nullptr, Options());
  uint64_t v0 = fleet_.snapshot().version();
  std::string pad = std::string(600, 'y');
  ASSERT_TRUE(
      jm.ScheduleText(TwinJob("t", "tags.building = '43'", R"({"pad":")" + pad + R"("})")).ok());
  jm.Poll();
  jm.Wait("t");
  Expected<DeviceJobStatistics> s = jm.Statistics("t");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->device_count, 5);
  EXPECT_EQ(s->succeeded_count, 4);
  EXPECT_EQ(s->failed_count, 1);
  EXPECT_EQ(Targets(fleet_, "tags.pad = '" + pad + "'"),
            (std::vector<std::string>{"dev-00", "dev-04", "dev-06", "dev-08"}));
  // Two batches, two versions: the refused first round published nothing.
  EXPECT_EQ(fleet_.snapshot().version(), v0 + 2);
  Expected<QueryResult> failed =
      jm.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE status = 'failed'");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->rows.size(), 1u);
  EXPECT_EQ(Str(failed->rows[0], "deviceId"), "dev-02");
  std::string error = ToJson(failed->rows[0]);
  EXPECT_NE(error.find("tags"), std::string::npos) << error;
}

TEST_F(JobManagerTest, ModuleTargets) {
  SimulatedDevices devices(clock_);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("m1", "FROM devices.modules WHERE moduleId = '$edgeAgent'",
                                      R"({"ring":"canary"})"))
                  .ok());
  ASSERT_TRUE(
      jm.ScheduleText(MethodJob("m2", "FROM devices.modules WHERE moduleId = 'filter'")).ok());
  jm.Poll();
  jm.WaitAll();
  EXPECT_EQ(Targets(fleet_, "FROM devices.modules WHERE tags.ring = 'canary'"),
            (std::vector<std::string>{"dev-00/$edgeAgent", "dev-01/$edgeAgent"}));
  Expected<QueryResult> q =
      jm.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE jobId = 'm2' AND moduleId = 'filter'");
  ASSERT_TRUE(q.ok()) << q.error().message;
  ASSERT_EQ(q->rows.size(), 2u);
  EXPECT_EQ(Str(q->rows[0], "deviceId"), "dev-00");
  EXPECT_EQ(Str(q->rows[1], "deviceId"), "dev-01");
  EXPECT_EQ(Str(q->rows[0], "status"), "completed");
}

TEST_F(JobManagerTest, MethodOutcomes) {
  SimulatedDevices devices(clock_);
  DeviceProfile answer;
  answer.latency_ms = 250;
  answer.status = 201;
  answer.payload = Value::MakeObject({{"ok", Value::Bool(true)}});
  devices.SetProfile("dev-00", answer);
  DeviceProfile offline;
  offline.online = false;
  devices.SetProfile("dev-02", offline);
  DeviceProfile late_connect;
  late_connect.online = false;
  late_connect.connect_after_ms = 2000;
  devices.SetProfile("dev-04", late_connect);
  DeviceProfile slow;
  slow.latency_ms = 31'000;
  devices.SetProfile("dev-06", slow);
  DeviceProfile error_status;
  error_status.status = 500;
  devices.SetProfile("dev-08", error_status);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("j", "tags.building = '43'", 0, 3600,
                                        R"(,"connectTimeoutInSeconds":5)"))
                  .ok());
  jm.Poll();
  jm.Wait("j");
  std::vector<Value> recs = jm.DeviceJobRecords();
  ASSERT_EQ(recs.size(), 5u);
  auto outcome = [&](size_t i) { return ToJson(*recs[i].Find("outcome")); };
  auto error = [&](size_t i) {
    const Value* e = recs[i].Find("error");
    return e ? ToJson(*e) : std::string("none");
  };
  // dev-00: answered after 250 ms.
  EXPECT_EQ(Str(recs[0], "status"), "completed");
  EXPECT_EQ(outcome(0), R"({"deviceMethodResponse":{"status":201,"payload":{"ok":true}}})");
  EXPECT_EQ(Str(recs[0], "startTimeUtc"), At(0));
  EXPECT_EQ(Str(recs[0], "endTimeUtc"), FormatTime(T0() + 250 * kTicksPerMillisecond));
  // dev-02: offline beyond connectTimeout (5 s): 404103 after 5 s.
  EXPECT_EQ(Str(recs[1], "status"), "failed");
  EXPECT_EQ(error(1), R"({"code":"DeviceNotOnline","errorCode":404103,)"
                      R"("description":"Timed out waiting for device to connect."})");
  EXPECT_EQ(outcome(1), R"({"deviceMethodResponse":null})");
  // dev-04: connects after 2 s, within connectTimeout: answers (echoing the payload).
  EXPECT_EQ(Str(recs[2], "status"), "completed");
  EXPECT_EQ(outcome(2), R"({"deviceMethodResponse":{"status":200,"payload":{"delay":1}}})");
  // dev-06: answers after 31 s > responseTimeout 30 s: 504101.
  EXPECT_EQ(Str(recs[3], "status"), "failed");
  EXPECT_EQ(error(3), R"({"code":"GatewayTimeout","errorCode":504101,)"
                      R"("description":"Timed out waiting for the response from device."})");
  // dev-08: answered with 500: the device job still completed (B.5).
  EXPECT_EQ(Str(recs[4], "status"), "completed");
  EXPECT_EQ(outcome(4), R"({"deviceMethodResponse":{"status":500,"payload":{"delay":1}}})");
  Value job = *jm.Get("j");
  EXPECT_EQ(Str(job, "status"), "failed");
  EXPECT_EQ(Str(job, "failureReason"), "2 of 5 devices failed");
  EXPECT_EQ(ToJson(*job.Find("deviceJobStatistics")),
            R"({"deviceCount":5,"failedCount":2,"succeededCount":3,"runningCount":0,)"
            R"("pendingCount":0})");
  // Virtual time: 0.25 + 5 + 2 + 30 + 0 seconds, one device after the other.
  EXPECT_EQ(Str(job, "endTime"), FormatTime(T0() + 37'250 * kTicksPerMillisecond));
}

TEST_F(JobManagerTest, ConnectTimeoutZeroMeansMustBeOnline) {
  SimulationSettings s;
  s.offline_share = 1.0;
  SimulatedDevices devices(clock_, s);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("j", "deviceId = 'dev-03'")).ok());
  jm.Poll();
  jm.Wait("j");
  std::vector<Value> recs = jm.DeviceJobRecords();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(ToJson(*recs[0].Find("error")),
            R"({"code":"DeviceNotOnline","errorCode":404103,"description":"Device not online."})");
  EXPECT_EQ(Str(recs[0], "endTimeUtc"), At(0));  // connectTimeout 0: fails at once
}

TEST_F(JobManagerTest, CancelQueuedScheduledAndTerminal) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("q", "*", R"({"a":"b"})", 100)).ok());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("s", "*", R"({"a":"b"})", 100)).ok());
  Expected<Value> c = jm.Cancel("q");  // still queued
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(Str(*c, "status"), "cancelled");
  jm.Poll();
  EXPECT_EQ(*jm.Status("s"), JobStatus::kScheduled);
  clock_.Advance(10 * kTicksPerSecond);
  c = jm.Cancel("s");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Str(*c, "status"), "cancelled");
  EXPECT_EQ(Str(*c, "endTime"), At(10));
  clock_.Advance(100 * kTicksPerSecond);
  EXPECT_EQ(jm.Poll(), 0u);  // cancelled jobs never start
  EXPECT_EQ(*jm.Status("s"), JobStatus::kCancelled);
  EXPECT_TRUE(Targets(fleet_, "tags.a = 'b'").empty());
  c = jm.Cancel("s");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "InvalidOperation: job 's' is already cancelled and cannot be cancelled");
  EXPECT_EQ(jm.Cancel("zz").error().message, "JobNotFound: no job with id 'zz'");
}

TEST_F(JobManagerTest, CancelWhileRunning) {
  JobManager* manager = nullptr;
  int calls = 0;
  HookInvoker invoker(clock_, [&](const MethodCall&) {
    if (++calls == 3) {
      Expected<Value> c = manager->Cancel("run");
      EXPECT_TRUE(c.ok());
      EXPECT_EQ(Str(*c, "status"), "cancelled");
    }
  });
  JobManager jm(fleet_, clock_, &invoker, Options());
  manager = &jm;
  ASSERT_TRUE(jm.ScheduleText(MethodJob("run", "*")).ok());
  jm.Poll();
  jm.Wait("run");
  EXPECT_EQ(calls, 3);  // nothing started after the cancel
  Value job = *jm.Get("run");
  EXPECT_EQ(Str(job, "status"), "cancelled");
  // The third call was in flight and finished; the seven others were canceled, counted as failed.
  EXPECT_EQ(ToJson(*job.Find("deviceJobStatistics")),
            R"({"deviceCount":10,"failedCount":7,"succeededCount":3,"runningCount":0,)"
            R"("pendingCount":0})");
  Expected<DeviceJobStatistics> s = jm.Statistics("run");
  EXPECT_EQ(s->canceled_count, 7);
  Expected<QueryResult> q =
      jm.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE status = 'canceled'");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->rows.size(), 7u);
  EXPECT_EQ(Str(q->rows[0], "deviceId"), "dev-03");
  EXPECT_EQ(
      ToJson(*q->rows[0].Find("error")),
      R"({"code":"JobCancelled","description":"the job was cancelled before this device ran"})");
  EXPECT_EQ(Str(q->rows[0], "lastUpdatedDateTimeUtc"), At(0));
}

TEST_F(JobManagerTest, CancelledTwinJobNeverTouchesTheFleet) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("t", "*", R"({"x":"y"})")).ok());
  ASSERT_TRUE(jm.Cancel("t").ok());
  jm.Poll();
  jm.WaitAll();
  EXPECT_TRUE(Targets(fleet_, "tags.x = 'y'").empty());
  EXPECT_EQ(ToJson(*jm.Get("t")->Find("deviceJobStatistics")),
            R"({"deviceCount":0,"failedCount":0,"succeededCount":0,"runningCount":0,)"
            R"("pendingCount":0})");
}

TEST_F(JobManagerTest, ThrottlingMaxActiveJobs) {
  JobManagerOptions o = Options();
  o.max_active_jobs = 2;
  JobManager jm(fleet_, clock_, nullptr, o);
  ASSERT_TRUE(jm.ScheduleText(TwinJob("a", "*", R"({"a":"1"})", 60)).ok());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("b", "*", R"({"b":"1"})", 60)).ok());
  Expected<Value> c = jm.ScheduleText(TwinJob("c", "*", R"({"c":"1"})"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "ThrottlingMaxActiveJobCountExceeded: 2 jobs are already active (queued, scheduled "
            "or running); the limit is 2");
  ASSERT_TRUE(jm.Cancel("a").ok());  // a cancelled job is no longer active
  ASSERT_TRUE(jm.ScheduleText(TwinJob("c", "*", R"({"c":"1"})")).ok());
  EXPECT_FALSE(jm.ScheduleText(TwinJob("d", "*", R"({"d":"1"})")).ok());
  jm.Poll();  // c runs; b is scheduled (a minute away)
  jm.Wait("c");
  ASSERT_TRUE(jm.ScheduleText(TwinJob("d", "*", R"({"d":"1"})")).ok());
}

TEST_F(JobManagerTest, DeadlineStopsDispatching) {
  SimulationSettings s;
  s.latency_min_ms = s.latency_max_ms = 1000;
  SimulatedDevices devices(clock_, s);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("d", "*", 0, 5)).ok());
  jm.Poll();
  jm.Wait("d");
  Value job = *jm.Get("d");
  EXPECT_EQ(Str(job, "status"), "failed");
  // Devices start at 0, 1, 2, 3, 4 s; at 5 s the deadline has passed.
  EXPECT_EQ(ToJson(*job.Find("deviceJobStatistics")),
            R"({"deviceCount":10,"failedCount":5,"succeededCount":5,"runningCount":0,)"
            R"("pendingCount":0})");
  EXPECT_EQ(Str(job, "failureReason"),
            "the deadline (startTime + maxExecutionTimeInSeconds = 5 s) passed with 5 of 10 "
            "devices not run; 5 devices failed in all");
  Expected<QueryResult> q = jm.QueryDeviceJobs(
      "SELECT * FROM devices.jobs WHERE jobId = 'd' AND error.code = 'JobExpired'");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->rows.size(), 5u);
  EXPECT_EQ(Str(q->rows[0], "deviceId"), "dev-05");
  // A job started after its deadline runs no device.
  clock_.Set(T0() + 100 * kTicksPerSecond);
  ASSERT_TRUE(jm.ScheduleText(TwinJob("late", "*", R"({"late":"1"})", 0, 10)).ok());
  jm.Poll();
  jm.Wait("late");
  EXPECT_EQ(Str(*jm.Get("late"), "status"), "failed");
  EXPECT_TRUE(Targets(fleet_, "tags.late = '1'").empty());
}

TEST_F(JobManagerTest, StatisticsAlwaysSumToDeviceCount) {
  JobManager* manager = nullptr;
  std::atomic<int> checks{0};  // counted on the job's worker threads
  auto check = [&] {
    Expected<DeviceJobStatistics> s = manager->Statistics("s");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->pending_count + s->running_count + s->succeeded_count + s->failed_count,
              s->device_count);
    Value wire = *manager->Get("s");
    const Value& st = *wire.Find("deviceJobStatistics");
    double sum = 0;
    for (const char* k : {"pendingCount", "runningCount", "succeededCount", "failedCount"}) {
      sum += st.Find(k)->as_number();
    }
    EXPECT_EQ(sum, st.Find("deviceCount")->as_number());
    ++checks;
  };
  HookInvoker invoker(clock_, [&](const MethodCall& call) {
    check();
    Expected<DeviceJobStatistics> s = manager->Statistics("s");
    EXPECT_GE(s->running_count, 1);  // this call is running
    if (call.device_id == "dev-06") {
      EXPECT_TRUE(manager->Cancel("s").ok());
    }
  });
  SimulationSettings settings;
  settings.offline_share = 0.3;
  settings.seed = 11;
  JobManager jm(fleet_, clock_, &invoker, Options(3));
  manager = &jm;
  ASSERT_TRUE(jm.ScheduleText(MethodJob("s", "*")).ok());
  check();
  jm.Poll();
  jm.Wait("s");
  check();
  EXPECT_GT(checks.load(), 3);
  Expected<DeviceJobStatistics> s = jm.Statistics("s");
  EXPECT_EQ(s->device_count, 10);
  EXPECT_EQ(s->pending_count + s->running_count, 0);
}

TEST_F(JobManagerTest, NoInvokerFailsMethodJobs) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("m", "deviceId IN ['dev-01', 'dev-02']")).ok());
  jm.Poll();
  jm.Wait("m");
  Value job = *jm.Get("m");
  EXPECT_EQ(Str(job, "status"), "failed");
  EXPECT_EQ(Str(job, "statusMessage"), "no method invoker is connected: devices cannot be called");
}

TEST_F(JobManagerTest, DeviceJobsQueries) {
  SimulatedDevices devices(clock_);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("t", "tags.floor < 3", R"({"q":"1"})")).ok());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("m", "tags.floor >= 2")).ok());
  jm.Poll();
  jm.WaitAll();
  Expected<QueryResult> all = jm.QueryDeviceJobs("SELECT * FROM devices.jobs");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->rows.size(), 11u);
  // By deviceId, then job creation: dev-02 has both jobs.
  EXPECT_EQ(Str(all->rows[2], "deviceId"), "dev-02");
  EXPECT_EQ(Str(all->rows[2], "jobId"), "t");
  EXPECT_EQ(Str(all->rows[3], "jobId"), "m");
  EXPECT_EQ(ToJson(all->rows[0]),
            R"({"deviceId":"dev-00","jobId":"t","jobType":"scheduleUpdateTwin","status":)"
            R"("completed","startTimeUtc":")" +
                At(0) + R"(","endTimeUtc":")" + At(0) + R"(","createdDateTimeUtc":")" + At(0) +
                R"(","lastUpdatedDateTimeUtc":")" + At(0) +
                R"(","outcome":{"deviceMethodResponse":null}})");
  Expected<QueryResult> q = jm.QueryDeviceJobs(
      "SELECT * FROM devices.jobs WHERE jobType = 'scheduleDeviceMethod' AND "
      "outcome.deviceMethodResponse.status = 200 AND deviceId IN ['dev-02', 'dev-09']");
  ASSERT_TRUE(q.ok()) << q.error().message;
  ASSERT_EQ(q->rows.size(), 2u);
  EXPECT_EQ(Str(q->rows[1], "deviceId"), "dev-09");
  // Paging through the same engine.
  PageRequest page;
  page.page_size = 4;
  std::vector<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    Expected<QueryResult> p = jm.QueryDeviceJobs("SELECT * FROM devices.jobs", page);
    ASSERT_TRUE(p.ok()) << p.error().message;
    for (const Value& r : p->rows) seen.push_back(Str(r, "deviceId") + ":" + Str(r, "jobId"));
    if (p->continuation.empty()) break;
    page.continuation = p->continuation;
  }
  ASSERT_EQ(seen.size(), 11u);
  EXPECT_EQ(seen[10], "dev-09:m");
  // Errors: the binder's devices.jobs rules, and other collections.
  Expected<QueryResult> e = jm.QueryDeviceJobs("SELECT deviceId FROM devices.jobs");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("E214"), std::string::npos) << e.error().message;
  e = jm.QueryDeviceJobs("SELECT * FROM devices");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message,
            "ArgumentInvalid: device job records are queried FROM devices.jobs, not FROM devices");
}

TEST_F(JobManagerTest, ListFiltersAndPages) {
  JobManager jm(fleet_, clock_, nullptr, Options());
  for (int i = 0; i < 5; ++i) {
    std::string id = "t" + std::to_string(i);
    ASSERT_TRUE(jm.ScheduleText(i % 2 == 0 ? TwinJob(id, "deviceId = 'dev-01'", R"({"n":"1"})",
                                                     i < 4 ? 0 : 60)
                                           : MethodJob(id, "deviceId = 'dev-01'"))
                    .ok());
  }
  jm.Poll();
  jm.WaitAll();
  auto ids = [](const QueryResult& r) {
    std::string s;
    for (const Value& v : r.rows) s += Str(v, "jobId") + " ";
    return s;
  };
  Expected<QueryResult> all = jm.List({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ids(*all), "t0 t1 t2 t3 t4 ");
  EXPECT_TRUE(all->continuation.empty());
  EXPECT_EQ(ids(*jm.List({"scheduleUpdateTwin", ""})), "t0 t2 t4 ");
  EXPECT_EQ(ids(*jm.List({"", "completed"})), "t0 t2 ");
  EXPECT_EQ(ids(*jm.List({"", "failed"})), "t1 t3 ");  // no invoker
  EXPECT_EQ(ids(*jm.List({"scheduleUpdateTwin", "scheduled"})), "t4 ");
  PageRequest page;
  page.page_size = 2;
  Expected<QueryResult> p1 = jm.List({}, page);
  EXPECT_EQ(ids(*p1), "t0 t1 ");
  ASSERT_FALSE(p1->continuation.empty());
  page.continuation = p1->continuation;
  Expected<QueryResult> p2 = jm.List({}, page);
  EXPECT_EQ(ids(*p2), "t2 t3 ");
  page.continuation = p2->continuation;
  Expected<QueryResult> p3 = jm.List({}, page);
  EXPECT_EQ(ids(*p3), "t4 ");
  EXPECT_TRUE(p3->continuation.empty());
  // A token of another listing is refused.
  PageRequest other;
  other.page_size = 2;
  other.continuation = p1->continuation;
  EXPECT_FALSE(jm.List({"scheduleUpdateTwin", ""}, other).ok());
  // Bad filters.
  EXPECT_EQ(jm.List({"scheduleTwinUpdate", ""}).error().message,
            "GenericBadRequest: jobType 'scheduleTwinUpdate' is not a job type; did you mean "
            "'scheduleUpdateTwin'?");
  EXPECT_EQ(jm.List({"", "canceled"}).error().message,
            "GenericBadRequest: jobStatus 'canceled' is not a job status (queued, scheduled, "
            "running, completed, failed, cancelled); the job status is spelled 'cancelled'");
  EXPECT_FALSE(jm.List({"", "Completed"}).ok());
}

TEST_F(JobManagerTest, ExportImportRoundTrip) {
  SimulatedDevices devices(clock_);
  JobManager jm(fleet_, clock_, &devices, Options());
  ASSERT_TRUE(jm.ScheduleText(MethodJob("m", "tags.floor < 2")).ok());
  ASSERT_TRUE(jm.ScheduleText(TwinJob("later", "*", R"({"z":"1"})", 600)).ok());
  jm.Poll();
  jm.WaitAll();
  Value state = jm.Export();
  JobManager other(fleet_, clock_, &devices, Options());
  Expected<size_t> n = other.Import(state);
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(ToJson(*other.Get("m")), ToJson(*jm.Get("m")));
  EXPECT_EQ(ToJson(*other.Get("later")), ToJson(*jm.Get("later")));
  EXPECT_EQ(ToJson(Value::MakeArray(other.DeviceJobRecords())),
            ToJson(Value::MakeArray(jm.DeviceJobRecords())));
  // The scheduled job runs in the importing manager.
  clock_.Advance(600 * kTicksPerSecond);
  EXPECT_EQ(other.Poll(), 1u);
  other.WaitAll();
  EXPECT_EQ(Str(*other.Get("later"), "status"), "completed");
  EXPECT_FALSE(other.Import(Value::MakeObject({})).ok());
}

}  // namespace
}  // namespace twinq::jobs
