// Job request parsing and validation (jobs/job_request.h) and ISO-8601 times (jobs/clock.h).
#include "jobs/job_request.h"

#include <gtest/gtest.h>

#include "engine/common/json_reader.h"
#include "jobs/clock.h"

namespace twinq::jobs {
namespace {

std::string ErrorOf(std::string_view json, const ValidationOptions& options = {}) {
  Expected<JobRequest> r = ParseJobRequestText(json, options);
  return r.ok() ? "" : r.error().message;
}

const char* kTwin =
    R"({"jobId":"job02","type":"scheduleUpdateTwin",
        "updateTwin":{"properties":{"desired":{"test1":"value1"}},"etag":"*"},
        "queryCondition":"deviceId = 'test-device'","startTime":"2022-05-08T12:19:56.868Z",
        "maxExecutionTimeInSeconds":20})";
const char* kMethod =
    R"({"jobId":"job01","type":"scheduleDeviceMethod",
        "cloudToDeviceMethod":{"methodName":"testMethod","payload":{},
                               "responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0},
        "queryCondition":"*","startTime":"2022-05-04T15:53:00.077Z",
        "maxExecutionTimeInSeconds":20})";

// A request with one member replaced (or removed when `value` is empty).
std::string With(const char* base, const std::string& key, const std::string& value) {
  Expected<Value> v = ParseJson(base, "base");
  EXPECT_TRUE(v.ok());
  Object o;
  bool replaced = false;
  for (const auto& m : v->as_object()) {
    if (m.first == key) {
      replaced = true;
      if (value.empty()) continue;
      Expected<Value> nv = ParseJson(value, "value");
      EXPECT_TRUE(nv.ok()) << value;
      o.emplace_back(key, *nv);
    } else {
      o.push_back(m);
    }
  }
  if (!replaced && !value.empty()) o.emplace_back(key, *ParseJson(value, "value"));
  return ToJson(Value::MakeObject(std::move(o)));
}

TEST(JobTime, ParsesIso8601) {
  int64_t t = 0;
  std::string why;
  ASSERT_TRUE(ParseTime("1970-01-01T00:00:00Z", &t, &why)) << why;
  EXPECT_EQ(t, 0);
  ASSERT_TRUE(ParseTime("1970-01-01T00:00:01.5Z", &t, &why));
  EXPECT_EQ(t, 15'000'000);
  ASSERT_TRUE(ParseTime("1970-01-01T01:00:00+01:00", &t, &why));
  EXPECT_EQ(t, 0);
  ASSERT_TRUE(ParseTime("2022-05-04T15:53:00.077Z", &t, &why));
  EXPECT_EQ(FormatTime(t), "2022-05-04T15:53:00.0770000Z");
  ASSERT_TRUE(ParseTime("2024-02-29T00:00:00", &t, &why));  // leap day, no zone: UTC
  EXPECT_EQ(FormatTime(t), "2024-02-29T00:00:00.0000000Z");
  ASSERT_TRUE(ParseTime("2020-01-06T21:44:00.8884134Z", &t, &why));
  EXPECT_EQ(FormatTime(t), "2020-01-06T21:44:00.8884134Z");
}

TEST(JobTime, RejectsBadTimes) {
  int64_t t = 0;
  std::string why;
  EXPECT_FALSE(ParseTime("2022-13-01T00:00:00Z", &t, &why));
  EXPECT_EQ(why, "month 13 is out of range (01-12)");
  EXPECT_FALSE(ParseTime("2023-02-29T00:00:00Z", &t, &why));
  EXPECT_EQ(why, "day 29 is out of range for 2023-02 (01-28)");
  EXPECT_FALSE(ParseTime("2022-01-01 00:00:00Z", &t, &why));
  EXPECT_EQ(why, "expected 'T' between date and time at offset 10");
  EXPECT_FALSE(ParseTime("2022-01-01T24:00:00Z", &t, &why));
  EXPECT_FALSE(ParseTime("2022-01-01T00:00:60Z", &t, &why));
  EXPECT_FALSE(ParseTime("2022-01-01T00:00:00.Z", &t, &why));
  EXPECT_FALSE(ParseTime("2022-01-01T00:00:00Zjunk", &t, &why));
  EXPECT_FALSE(ParseTime("yesterday", &t, &why));
  EXPECT_FALSE(ParseTime("", &t, &why));
}

TEST(JobRequestValidation, AcceptsTheDocumentedBodies) {
  Expected<JobRequest> t = ParseJobRequestText(kTwin);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->job_id, "job02");
  EXPECT_EQ(t->type, JobType::kUpdateTwin);
  EXPECT_EQ(ToJson(t->patch), R"({"properties":{"desired":{"test1":"value1"}}})");
  EXPECT_EQ(t->max_execution_time_s, 20);
  Expected<JobRequest> m = ParseJobRequestText(kMethod);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->method.method_name, "testMethod");
  EXPECT_EQ(m->method.response_timeout_s, 30);
  EXPECT_EQ(m->condition->collection, check::Collection::kDevices);
  EXPECT_EQ(ToJson(RequestToJson(*m)),
            R"({"jobId":"job01","type":"scheduleDeviceMethod","cloudToDeviceMethod":{)"
            R"("methodName":"testMethod","payload":{},"responseTimeoutInSeconds":30,)"
            R"("connectTimeoutInSeconds":0},"queryCondition":"*",)"
            R"("startTime":"2022-05-04T15:53:00.0770000Z","maxExecutionTimeInSeconds":20})");
}

TEST(JobRequestValidation, TimeoutDefaultsAndBounds) {
  std::string body = With(kMethod, "cloudToDeviceMethod", R"({"methodName":"reboot"})");
  Expected<JobRequest> r = ParseJobRequestText(body);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->method.response_timeout_s, 30);
  EXPECT_EQ(r->method.connect_timeout_s, 0);
  EXPECT_TRUE(r->method.payload.is_null());
  EXPECT_EQ(ErrorOf(With(kMethod, "cloudToDeviceMethod",
                         R"({"methodName":"m","responseTimeoutInSeconds":4})")),
            "ArgumentInvalid: cloudToDeviceMethod.responseTimeoutInSeconds must be an integer "
            "from 5 to 300, not 4");
  EXPECT_NE(ErrorOf(With(kMethod, "cloudToDeviceMethod",
                         R"({"methodName":"m","responseTimeoutInSeconds":301})")),
            "");
  EXPECT_NE(ErrorOf(With(kMethod, "cloudToDeviceMethod",
                         R"({"methodName":"m","responseTimeoutInSeconds":7.5})")),
            "");
  EXPECT_EQ(ErrorOf(With(kMethod, "cloudToDeviceMethod",
                         R"({"methodName":"m","connectTimeoutInSeconds":301})")),
            "ArgumentInvalid: cloudToDeviceMethod.connectTimeoutInSeconds must be an integer "
            "from 0 to 300, not 301");
  EXPECT_TRUE(ParseJobRequestText(With(kMethod, "cloudToDeviceMethod",
                                       R"({"methodName":"m","responseTimeoutInSeconds":300,
                                           "connectTimeoutInSeconds":300})"))
                  .ok());
}

TEST(JobRequestValidation, UnknownTypesAndOldSpellings) {
  EXPECT_EQ(ErrorOf(With(kTwin, "type", R"("scheduleTwinUpdate")")),
            "GenericBadRequest: type: 'scheduleTwinUpdate' is an old spelling that is not "
            "accepted; use 'scheduleUpdateTwin'");
  EXPECT_EQ(ErrorOf(With(kMethod, "type", R"("scheduleDirectMethod")")),
            "GenericBadRequest: type: 'scheduleDirectMethod' is an old spelling that is not "
            "accepted; use 'scheduleDeviceMethod'");
  EXPECT_NE(ErrorOf(With(kMethod, "type", R"("scheduleDirectRequest")")).find("old spelling"),
            std::string::npos);
  EXPECT_NE(ErrorOf(With(kMethod, "type", R"("scheduledDeviceMethod")")).find("old spelling"),
            std::string::npos);
  EXPECT_NE(ErrorOf(With(kTwin, "type", R"("scheduledUpdateTwin")")).find("old spelling"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(With(kTwin, "type", R"("export")")),
            "GenericBadRequest: type: 'export' cannot be scheduled as a job; the types are "
            "'scheduleDeviceMethod' and 'scheduleUpdateTwin'");
  EXPECT_EQ(ErrorOf(With(kTwin, "type", R"("scheduleUpdateTwn")")),
            "GenericBadRequest: type: unknown job type 'scheduleUpdateTwn' (did you mean "
            "'scheduleUpdateTwin'?); the types are 'scheduleDeviceMethod' and "
            "'scheduleUpdateTwin'");
  EXPECT_NE(ErrorOf(With(kTwin, "type", R"("ScheduleUpdateTwin")")).find("case-sensitive"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(With(kTwin, "type", "")), "ArgumentNull: missing required field 'type'");
  EXPECT_EQ(ErrorOf(With(kTwin, "type", "3")),
            "GenericBadRequest: type must be a string, not number");
}

TEST(JobRequestValidation, MissingFields) {
  EXPECT_EQ(ErrorOf(With(kTwin, "jobId", "")), "ArgumentNull: missing required field 'jobId'");
  EXPECT_EQ(ErrorOf(With(kTwin, "queryCondition", "")),
            "ArgumentNull: missing required field 'queryCondition'");
  EXPECT_EQ(ErrorOf(With(kTwin, "startTime", "")),
            "ArgumentNull: missing required field 'startTime'");
  EXPECT_EQ(ErrorOf(With(kTwin, "maxExecutionTimeInSeconds", "")),
            "ArgumentNull: missing required field 'maxExecutionTimeInSeconds'");
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", "")),
            "ArgumentNull: missing required field 'updateTwin' (for a scheduleUpdateTwin job)");
  EXPECT_EQ(ErrorOf(With(kMethod, "cloudToDeviceMethod", "")),
            "ArgumentNull: missing required field 'cloudToDeviceMethod' (for a "
            "scheduleDeviceMethod job)");
  EXPECT_EQ(ErrorOf(With(kMethod, "cloudToDeviceMethod", R"({"payload":1})")),
            "ArgumentNull: missing required field 'cloudToDeviceMethod.methodName'");
  EXPECT_EQ(ErrorOf(With(kTwin, "maxExecutionTimeInSeconds", "0")),
            "ArgumentInvalid: maxExecutionTimeInSeconds must be a positive integer, not 0");
  EXPECT_EQ(ErrorOf("[1]"), "GenericBadRequest: a job request must be a JSON object, not array");
  EXPECT_NE(ErrorOf("{\"jobId\":"), "");
}

TEST(JobRequestValidation, BadTimes) {
  EXPECT_EQ(ErrorOf(With(kTwin, "startTime", R"("2022-13-08T12:19:56Z")")),
            "ArgumentInvalid: startTime \"2022-13-08T12:19:56Z\" is not an ISO-8601 date-time: "
            "month 13 is out of range (01-12)");
  EXPECT_EQ(ErrorOf(With(kTwin, "startTime", "null")),
            "ArgumentInvalid: startTime must be an ISO-8601 date-time string, not null");
  EXPECT_NE(ErrorOf(With(kTwin, "startTime", R"("now")")), "");
}

TEST(JobRequestValidation, ConditionDiagnosticsHavePositions) {
  std::string e =
      ErrorOf(With(kTwin, "queryCondition", R"x("tags.floor > 2 AND STARTWITH(deviceId, 'a')")x"));
  EXPECT_EQ(e,
            "ArgumentInvalid: queryCondition:\n"
            "error[E200] <queryCondition>:1:20: unknown function 'STARTWITH'; did you mean "
            "'STARTSWITH'?\n"
            " | tags.floor > 2 AND STARTWITH(deviceId, 'a')\n"
            " |                    ^~~~~~~~~");
  e = ErrorOf(With(kTwin, "queryCondition", R"("SELECT * FROM devices")"));
  EXPECT_NE(e.find("E114"), std::string::npos) << e;
  EXPECT_NE(e.find(":1:1:"), std::string::npos) << e;
  // Module conditions are accepted and give module targets.
  Expected<JobRequest> r = ParseJobRequestText(
      With(kTwin, "queryCondition", R"("FROM devices.modules WHERE moduleId = '$edgeAgent'")"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->condition->collection, check::Collection::kModules);
}

TEST(JobRequestValidation, EtagMustBeStar) {
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"tags":{"a":"b"},"etag":"AAAAAAAAAAc="})")),
            "PreconditionFailed: updateTwin.etag must be \"*\" (twin jobs force the update), not "
            "\"AAAAAAAAAAc=\"");
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"tags":{"a":"b"}})")),
            "PreconditionFailed: updateTwin.etag is missing; twin jobs force the update and need "
            "\"etag\": \"*\"");
  EXPECT_TRUE(
      ParseJobRequestText(With(kTwin, "updateTwin", R"({"tags":{"a":"b"},"etag":"\"*\""})")).ok());
}

TEST(JobRequestValidation, UpdateTwinShape) {
  // The echoed form ("deviceId": null) is accepted.
  EXPECT_TRUE(ParseJobRequestText(
                  With(kTwin, "updateTwin", R"({"deviceId":null,"etag":"*","tags":{"a":"b"}})"))
                  .ok());
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"deviceId":"d","etag":"*","tags":{"a":"b"}})")),
            "ArgumentInvalid: updateTwin.deviceId must be null or absent: a job's targets come "
            "from queryCondition");
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"etag":"*","status":"disabled"})")),
            "ArgumentInvalid: updateTwin.status: a twin job may only update tags and "
            "properties.desired");
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"etag":"*"})")),
            "ArgumentInvalid: updateTwin has neither tags nor properties.desired to update");
  EXPECT_EQ(ErrorOf(With(kTwin, "updateTwin", R"({"etag":"*","properties":{"reported":{"x":1}}})")),
            "ArgumentInvalid: updateTwin has neither tags nor properties.desired to update");
  std::string reported = ErrorOf(With(
      kTwin, "updateTwin", R"({"etag":"*","properties":{"desired":{"a":1},"reported":{"x":1}}})"));
  EXPECT_EQ(reported.rfind("ArgumentInvalid: updateTwin.", 0), 0u) << reported;
  EXPECT_NE(reported.find("reported"), std::string::npos) << reported;
  // A.9 rules on the patch: '.' in a key.
  std::string e = ErrorOf(With(kTwin, "updateTwin", R"({"etag":"*","tags":{"a.b":1}})"));
  EXPECT_EQ(e.rfind("ArgumentInvalid: updateTwin.", 0), 0u) << e;
  EXPECT_NE(e.find("'.'"), std::string::npos) << e;
}

TEST(JobRequestValidation, JobPropertyCharsetRule) {
  std::string body = With(kTwin, "updateTwin", R"({"etag":"*","tags":{"site":"b43:f2"}})");
  std::string e = ErrorOf(body);
  EXPECT_EQ(e.rfind("ArgumentInvalid: updateTwin.tags.site:", 0), 0u) << e;
  EXPECT_NE(e.find("':'"), std::string::npos) << e;
  ValidationOptions off;
  off.job_property_charset = false;
  EXPECT_EQ(ErrorOf(body, off), "");
  // A key: names the key and the character.
  e = ErrorOf(With(kTwin, "updateTwin", R"({"etag":"*","tags":{"a=b":"x"}})"));
  EXPECT_NE(e.find("a=b"), std::string::npos) << e;
  EXPECT_NE(e.find("'='"), std::string::npos) << e;
  // methodName.
  std::string m = With(kMethod, "cloudToDeviceMethod", R"({"methodName":"do it"})");
  EXPECT_EQ(ErrorOf(m),
            "ArgumentInvalid: cloudToDeviceMethod.methodName \"do it\" contains a space, which "
            "is not allowed in job property names (the Jobs property rule; it can be switched "
            "off)");
  EXPECT_EQ(ErrorOf(m, off), "");
  // Payloads are not checked (B.2 [INFER]).
  EXPECT_EQ(ErrorOf(With(kMethod, "cloudToDeviceMethod",
                         R"({"methodName":"m","payload":{"a b":"c:d"}})")),
            "");
}

TEST(JobRequestValidation, LegacyAndUnknownFields) {
  EXPECT_EQ(ErrorOf(With(kTwin, "deviceIds", R"(["a"])")),
            "GenericBadRequest: deviceIds is a 2016 preview field that is not accepted; target "
            "devices with queryCondition, e.g. \"deviceId IN ['a', 'b']\"");
  EXPECT_NE(ErrorOf(With(kTwin, "timeoutInSeconds", "5")).find("2016 preview"), std::string::npos);
  EXPECT_EQ(ErrorOf(With(kTwin, "querycondition", R"("*")")),
            "GenericBadRequest: unknown field 'querycondition' (did you mean 'queryCondition'?)");
  EXPECT_EQ(ErrorOf(With(kMethod, "updateTwin", R"({"etag":"*","tags":{"a":"b"}})")),
            "GenericBadRequest: a scheduleDeviceMethod job must not carry updateTwin");
}

TEST(JobRequestValidation, JobIds) {
  EXPECT_EQ(ErrorOf(With(kTwin, "jobId", R"("a/b")")),
            "ArgumentInvalid: jobId \"a/b\" contains '/'; job ids use letters, digits and - : . "
            "+ % _ # * ? ! ( ) , = @ ; $ '");
  EXPECT_EQ(ErrorOf(With(kTwin, "jobId", R"("")")),
            "ArgumentInvalid: jobId \"\" must not be empty");
  EXPECT_NE(ErrorOf(With(kTwin, "jobId", "\"" + std::string(129, 'a') + "\"")), "");
  EXPECT_EQ(ErrorOf(With(kTwin, "jobId", "\"" + std::string(128, 'a') + "\"")), "");
}

}  // namespace
}  // namespace twinq::jobs
