#include "jobs/job_request.h"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/common/json_reader.h"
#include "index/twin_patch.h"
#include "jobs/clock.h"
#include "tools/frontend.h"

namespace twinq::jobs {

std::string_view JobTypeName(JobType t) {
  return t == JobType::kDeviceMethod ? "scheduleDeviceMethod" : "scheduleUpdateTwin";
}

namespace {

Error Bad(std::string_view code, const std::string& what) {
  return Error{fmt::format("{}: {}", code, what)};
}

// The Jobs property rule (B.2): the first offending character, or 0 when `s` is fine. Returns
// the byte (non-ASCII bytes are returned as themselves; the caller prints U+XXXX-ish).
int JobCharsetViolation(std::string_view s) {
  static constexpr std::string_view kExcluded = "$()<>@,;:\\\"/[]?={} \t";
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E || kExcluded.find(static_cast<char>(c)) != std::string_view::npos) {
      return c == 0 ? 256 : c;
    }
  }
  return 0;
}

std::string CharName(int c) {
  if (c == 256) return "U+0000";
  if (c == ' ') return "a space";
  if (c == '\t') return "a tab";
  if (c >= 0x21 && c <= 0x7E) return fmt::format("'{}'", static_cast<char>(c));
  if (c >= 0x80) return fmt::format("the non-ASCII byte 0x{:02X}", c);
  return fmt::format("U+{:04X}", c);
}

// An integral JSON number in [lo, hi].
bool IntegerIn(const Value& v, int64_t lo, int64_t hi, int64_t* out) {
  if (!v.is_number()) return false;
  double d = v.as_number();
  if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) ||
      d > static_cast<double>(hi)) {
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

const std::vector<std::string_view> kTopFields = {"jobId",
                                                  "type",
                                                  "queryCondition",
                                                  "startTime",
                                                  "maxExecutionTimeInSeconds",
                                                  "cloudToDeviceMethod",
                                                  "updateTwin"};

Expected<bool> CheckType(const Value* type, JobType* out) {
  if (type == nullptr) return Bad("ArgumentNull", "missing required field 'type'");
  if (!type->is_string()) {
    return Bad("GenericBadRequest",
               fmt::format("type must be a string, not {}", ValueKindName(type->kind())));
  }
  const std::string& t = type->as_string();
  if (t == "scheduleDeviceMethod") {
    *out = JobType::kDeviceMethod;
    return true;
  }
  if (t == "scheduleUpdateTwin") {
    *out = JobType::kUpdateTwin;
    return true;
  }
  struct Legacy {
    std::string_view old, now;
  };
  static constexpr Legacy kLegacy[] = {
      {"scheduleDirectRequest", "scheduleDeviceMethod"},
      {"scheduleDirectMethod", "scheduleDeviceMethod"},
      {"scheduledDeviceMethod", "scheduleDeviceMethod"},
      {"scheduleTwinUpdate", "scheduleUpdateTwin"},
      {"scheduledUpdateTwin", "scheduleUpdateTwin"},
  };
  for (const Legacy& l : kLegacy) {
    if (EqualsIgnoreCase(t, l.old)) {
      return Bad(
          "GenericBadRequest",
          fmt::format("type: '{}' is an old spelling that is not accepted; use '{}'", t, l.now));
    }
  }
  if (EqualsIgnoreCase(t, "scheduleDeviceMethod") || EqualsIgnoreCase(t, "scheduleUpdateTwin")) {
    return Bad("GenericBadRequest",
               fmt::format("type: '{}' is not a job type (types are case-sensitive); use '{}'", t,
                           EqualsIgnoreCase(t, "scheduleDeviceMethod") ? "scheduleDeviceMethod"
                                                                       : "scheduleUpdateTwin"));
  }
  static constexpr std::string_view kOther[] = {"unknown",
                                                "export",
                                                "import",
                                                "backup",
                                                "readDeviceProperties",
                                                "writeDeviceProperties",
                                                "updateDeviceConfiguration",
                                                "rebootDevice",
                                                "factoryResetDevice",
                                                "firmwareUpdate",
                                                "restoreFromBackup",
                                                "failoverDataCopy"};
  for (std::string_view o : kOther) {
    if (t == o) {
      return Bad("GenericBadRequest",
                 fmt::format("type: '{}' cannot be scheduled as a job; the types are "
                             "'scheduleDeviceMethod' and 'scheduleUpdateTwin'",
                             t));
    }
  }
  std::string_view near = ClosestMatch(t, {"scheduleDeviceMethod", "scheduleUpdateTwin"});
  return Bad("GenericBadRequest",
             fmt::format("type: unknown job type '{}'{}; the types are 'scheduleDeviceMethod' and "
                         "'scheduleUpdateTwin'",
                         t, near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
}

Expected<bool> ParseMethod(const Value& v, const ValidationOptions& options, MethodSpec* m) {
  if (!v.is_object()) {
    return Bad("ArgumentInvalid", fmt::format("cloudToDeviceMethod must be an object, not {}",
                                              ValueKindName(v.kind())));
  }
  bool have_name = false;
  for (const auto& [key, value] : v.as_object()) {
    if (key == "methodName") {
      if (!value.is_string() || value.as_string().empty()) {
        return Bad("ArgumentInvalid", "cloudToDeviceMethod.methodName must be a non-empty string");
      }
      m->method_name = value.as_string();
      have_name = true;
    } else if (key == "payload") {
      m->payload = value;
      std::string json = ToJson(value);
      if (json.size() > kMaxMethodPayloadBytes) {
        return Bad("ArgumentInvalid",
                   fmt::format("cloudToDeviceMethod.payload is {} bytes; the limit is {} (128 KB)",
                               json.size(), kMaxMethodPayloadBytes));
      }
    } else if (key == "responseTimeoutInSeconds") {
      int64_t n = 0;
      if (!value.is_null()) {
        if (!IntegerIn(value, kMinResponseTimeout, kMaxResponseTimeout, &n)) {
          return Bad("ArgumentInvalid",
                     fmt::format("cloudToDeviceMethod.responseTimeoutInSeconds must be an integer "
                                 "from {} to {}, not {}",
                                 kMinResponseTimeout, kMaxResponseTimeout, ToJson(value)));
        }
        m->response_timeout_s = static_cast<int>(n);
      }
    } else if (key == "connectTimeoutInSeconds") {
      int64_t n = 0;
      if (!value.is_null()) {
        if (!IntegerIn(value, 0, kMaxConnectTimeout, &n)) {
          return Bad("ArgumentInvalid",
                     fmt::format("cloudToDeviceMethod.connectTimeoutInSeconds must be an integer "
                                 "from 0 to {}, not {}",
                                 kMaxConnectTimeout, ToJson(value)));
        }
        m->connect_timeout_s = static_cast<int>(n);
      }
    } else if (key == "timeoutInSeconds") {
      return Bad("ArgumentInvalid",
                 "cloudToDeviceMethod.timeoutInSeconds is a 2016 preview name that is not "
                 "accepted; use responseTimeoutInSeconds (and connectTimeoutInSeconds)");
    } else {
      std::string_view near = ClosestMatch(
          key, {"methodName", "payload", "responseTimeoutInSeconds", "connectTimeoutInSeconds"});
      return Bad("ArgumentInvalid",
                 fmt::format("cloudToDeviceMethod: unknown field '{}'{}", key,
                             near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
    }
  }
  if (!have_name)
    return Bad("ArgumentNull", "missing required field 'cloudToDeviceMethod.methodName'");
  if (options.job_property_charset) {
    if (int c = JobCharsetViolation(m->method_name); c != 0) {
      return Bad("ArgumentInvalid",
                 fmt::format("cloudToDeviceMethod.methodName \"{}\" contains {}, which is not "
                             "allowed in job property names (the Jobs property rule; it can be "
                             "switched off)",
                             m->method_name, CharName(c)));
    }
  }
  return true;
}

Expected<bool> ParseUpdateTwin(const Value& v, const ValidationOptions& options, Value* patch) {
  if (!v.is_object()) {
    return Bad("ArgumentInvalid",
               fmt::format("updateTwin must be an object, not {}", ValueKindName(v.kind())));
  }
  const Value* etag = v.Find("etag");
  if (etag == nullptr) {
    return Bad("PreconditionFailed",
               "updateTwin.etag is missing; twin jobs force the update and need \"etag\": \"*\"");
  }
  if (!etag->is_string() || (etag->as_string() != "*" && etag->as_string() != "\"*\"")) {
    return Bad("PreconditionFailed",
               fmt::format("updateTwin.etag must be \"*\" (twin jobs force the update), not {}",
                           ToJson(*etag)));
  }
  Object out;
  bool have_tags = false, have_desired = false;
  for (const auto& [key, value] : v.as_object()) {
    if (key == "etag") continue;
    if (key == "deviceId" || key == "moduleId") {
      if (value.is_null()) continue;  // as the service echoes it
      return Bad("ArgumentInvalid",
                 fmt::format("updateTwin.{} must be null or absent: a job's targets come from "
                             "queryCondition",
                             key));
    }
    if (key == "tags") {
      have_tags = true;
      out.emplace_back(key, value);
    } else if (key == "properties") {
      if (value.is_object() && value.Find("desired") != nullptr) have_desired = true;
      out.emplace_back(key, value);
    } else {
      return Bad("ArgumentInvalid",
                 fmt::format("updateTwin.{}: a twin job may only update tags and "
                             "properties.desired",
                             key));
    }
  }
  if (!have_tags && !have_desired) {
    return Bad("ArgumentInvalid", "updateTwin has neither tags nor properties.desired to update");
  }
  *patch = Value::MakeObject(std::move(out));
  // The A.9 rules and, when on, the Jobs property rule: validated by applying the patch to an
  // empty twin (nothing is stored).
  index::PatchOptions po;
  po.now = "0001-01-01T00:00:00.0000000Z";
  po.validate_job_charset = options.job_property_charset;
  Value probe = Value::MakeObject({{"deviceId", Value::String("probe")}});
  Expected<index::PatchResult> r = index::ApplyTwinPatch(probe, *patch, "*", po);
  if (!r.ok()) {
    std::string msg = r.error().message;
    std::string code = "ArgumentInvalid";
    if (size_t colon = msg.find(": "); colon != std::string::npos && colon < 40) {
      code = msg.substr(0, colon);
      msg = msg.substr(colon + 2);
    }
    return Bad(code, "updateTwin." + msg);
  }
  return true;
}

}  // namespace

std::string CheckJobId(std::string_view id) {
  if (id.empty()) return "must not be empty";
  if (id.size() > kMaxJobIdLength) {
    return fmt::format("is {} characters long; the limit is {}", id.size(), kMaxJobIdLength);
  }
  static constexpr std::string_view kExtra = "-:.+%_#*?!(),=@;$'";
  for (unsigned char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              kExtra.find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) {
      return fmt::format(
          "contains {}; job ids use letters, digits and - : . + % _ # * ? ! ( ) , "
          "= @ ; $ '",
          CharName(c));
    }
  }
  return "";
}

Expected<JobRequest> ParseJobRequest(const Value& body, const ValidationOptions& options) {
  if (!body.is_object()) {
    return Bad("GenericBadRequest", fmt::format("a job request must be a JSON object, not {}",
                                                ValueKindName(body.kind())));
  }
  for (const auto& [key, value] : body.as_object()) {
    bool known = false;
    for (std::string_view f : kTopFields) known = known || key == f;
    if (known) continue;
    if (key == "deviceIds") {
      return Bad("GenericBadRequest",
                 "deviceIds is a 2016 preview field that is not accepted; target devices with "
                 "queryCondition, e.g. \"deviceId IN ['a', 'b']\"");
    }
    if (key == "timeoutInSeconds") {
      return Bad("GenericBadRequest",
                 "timeoutInSeconds is a 2016 preview field that is not accepted; use "
                 "maxExecutionTimeInSeconds (and cloudToDeviceMethod.responseTimeoutInSeconds)");
    }
    std::string_view near = ClosestMatch(key, kTopFields);
    for (std::string_view f : kTopFields) {
      if (EqualsIgnoreCase(f, key)) near = f;  // field names are case-sensitive
    }
    return Bad("GenericBadRequest",
               fmt::format("unknown field '{}'{}", key,
                           near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
  }
  JobRequest r;
  // type first: it decides which body is required.
  if (Expected<bool> t = CheckType(body.Find("type"), &r.type); !t.ok()) return t.error();

  const Value* id = body.Find("jobId");
  if (id == nullptr) return Bad("ArgumentNull", "missing required field 'jobId'");
  if (!id->is_string()) {
    return Bad("ArgumentInvalid",
               fmt::format("jobId must be a string, not {}", ValueKindName(id->kind())));
  }
  if (std::string why = CheckJobId(id->as_string()); !why.empty()) {
    return Bad("ArgumentInvalid", fmt::format("jobId \"{}\" {}", id->as_string(), why));
  }
  r.job_id = id->as_string();

  const Value* cond = body.Find("queryCondition");
  if (cond == nullptr) return Bad("ArgumentNull", "missing required field 'queryCondition'");
  if (!cond->is_string()) {
    return Bad("ArgumentInvalid",
               fmt::format("queryCondition must be a string, not {}", ValueKindName(cond->kind())));
  }
  r.query_condition = cond->as_string();

  const Value* start = body.Find("startTime");
  if (start == nullptr) return Bad("ArgumentNull", "missing required field 'startTime'");
  if (!start->is_string()) {
    return Bad("ArgumentInvalid",
               fmt::format("startTime must be an ISO-8601 date-time string, not {}",
                           start->is_null() ? "null" : ValueKindName(start->kind())));
  }
  std::string why;
  if (!ParseTime(start->as_string(), &r.start_time, &why)) {
    return Bad("ArgumentInvalid", fmt::format("startTime \"{}\" is not an ISO-8601 date-time: {}",
                                              start->as_string(), why));
  }

  const Value* max = body.Find("maxExecutionTimeInSeconds");
  if (max == nullptr) {
    return Bad("ArgumentNull", "missing required field 'maxExecutionTimeInSeconds'");
  }
  // Positive, and small enough that startTime + max stays a representable tick count.
  if (!IntegerIn(*max, 1, int64_t{1} << 40, &r.max_execution_time_s)) {
    return Bad(
        "ArgumentInvalid",
        fmt::format("maxExecutionTimeInSeconds must be a positive integer, not {}", ToJson(*max)));
  }

  const Value* method = body.Find("cloudToDeviceMethod");
  const Value* twin = body.Find("updateTwin");
  if (r.type == JobType::kDeviceMethod) {
    if (twin != nullptr) {
      return Bad("GenericBadRequest", "a scheduleDeviceMethod job must not carry updateTwin");
    }
    if (method == nullptr) {
      return Bad("ArgumentNull",
                 "missing required field 'cloudToDeviceMethod' (for a scheduleDeviceMethod job)");
    }
    if (Expected<bool> m = ParseMethod(*method, options, &r.method); !m.ok()) return m.error();
  } else {
    if (method != nullptr) {
      return Bad("GenericBadRequest",
                 "a scheduleUpdateTwin job must not carry cloudToDeviceMethod");
    }
    if (twin == nullptr) {
      return Bad("ArgumentNull",
                 "missing required field 'updateTwin' (for a scheduleUpdateTwin job)");
    }
    if (Expected<bool> p = ParseUpdateTwin(*twin, options, &r.patch); !p.ok()) return p.error();
  }

  // The condition last: its diagnostics carry positions into the condition text.
  Source source("<queryCondition>", r.query_condition);
  check::BindOptions bind;
  bind.strict = options.strict;
  Result<check::BoundCondition> bound = tools::CompileCondition(source, bind);
  if (!bound.ok()) {
    std::string text = Render(bound.diagnostics(), source);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return Bad("ArgumentInvalid", "queryCondition:\n" + text);
  }
  r.condition = std::make_shared<const check::BoundCondition>(std::move(bound).value());
  return r;
}

Expected<JobRequest> ParseJobRequestText(std::string_view json, const ValidationOptions& options) {
  Expected<Value> v = ParseJson(json, "<job request>");
  if (!v.ok()) return Bad("GenericBadRequest", v.error().message);
  return ParseJobRequest(*v, options);
}

Value UpdateTwinEcho(const JobRequest& r) {
  Object o;
  o.emplace_back("deviceId", Value::Null());
  o.emplace_back("etag", Value::String("*"));
  if (r.patch.is_object()) {
    for (const auto& m : r.patch.as_object()) o.push_back(m);
  }
  return Value::MakeObject(std::move(o));
}

Value MethodEcho(const JobRequest& r) {
  return Value::MakeObject({
      {"methodName", Value::String(r.method.method_name)},
      {"payload", r.method.payload},
      {"responseTimeoutInSeconds", Value::Number(r.method.response_timeout_s)},
      {"connectTimeoutInSeconds", Value::Number(r.method.connect_timeout_s)},
  });
}

Value RequestToJson(const JobRequest& r) {
  Object o;
  o.emplace_back("jobId", Value::String(r.job_id));
  o.emplace_back("type", Value::String(std::string(JobTypeName(r.type))));
  if (r.type == JobType::kDeviceMethod) {
    o.emplace_back("cloudToDeviceMethod", MethodEcho(r));
  } else {
    o.emplace_back("updateTwin", UpdateTwinEcho(r));
  }
  o.emplace_back("queryCondition", Value::String(r.query_condition));
  o.emplace_back("startTime", Value::String(FormatTime(r.start_time)));
  o.emplace_back("maxExecutionTimeInSeconds",
                 Value::Number(static_cast<double>(r.max_execution_time_s)));
  return Value::MakeObject(std::move(o));
}

}  // namespace twinq::jobs
